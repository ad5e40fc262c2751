package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// loginReport holds the login scenario's figures.
type loginReport struct {
	Dialers  int     `json:"dialers"`  // --conns parallel dialers
	Attempts int64   `json:"attempts"` // logins started and not cut by the end of the run
	Logins   int64   `json:"logins"`   // TLS + SASL PLAIN + bind completed (bind result read)
	Failures int64   `json:"failures"` // attempts that ended in an error
	Cut      int64   `json:"cut"`      // attempts in progress when --duration ended, not counted
	PerSec   float64 `json:"logins_per_sec"`
	Latency  latency `json:"latency_ms"` // TCP connect to bind result

	ServerCPUMsPerLogin *float64 `json:"server_cpu_ms_per_login,omitempty"`
	ClientCPUMsPerLogin float64  `json:"client_cpu_ms_per_login"`
}

// loginDialer is one of the login scenario's dialers; only its goroutine
// writes it until the run ends.
type loginDialer struct {
	lat []int64 // ns from connect to bind result, per login
	at  []int64 // ns since the start, per login
}

// runLogin is the login scenario: --conns dialers log devices in over and
// over (each login a fresh TCP + TLS connection, closed after bind) for
// --duration.
func (b *bench) runLogin(ctx context.Context, rep *report) (*report, error) {
	cfg := b.cfg
	setupStart := time.Now()
	sctx, cancel := context.WithTimeout(ctx, cfg.setupTimeout)
	err := b.setupRegs(sctx, false)
	cancel()
	rep.SetupSeconds = time.Since(setupStart).Seconds()
	if err != nil {
		return nil, setupError(err)
	}
	b.logf("setup done in %.2fs: %d devices checked in", rep.SetupSeconds, len(b.devices))

	lr := &loginReport{Dialers: cfg.conns}
	rep.Login = lr
	probe := b.startProbe(rep)
	dialers := b.loginPhase(ctx, lr)
	probe.stop(rep)
	b.fillLogin(rep, dialers)
	return rep, nil
}

// loginPhase runs the dialers for --duration and returns what each
// recorded. Dialer i logs in devices i, i+conns, ...: no two dialers use a
// device at once, since a device holds one session.
func (b *bench) loginPhase(parent context.Context, lr *loginReport) []*loginDialer {
	cfg := b.cfg
	ctx, cancel := context.WithTimeout(parent, cfg.duration)
	defer cancel()
	// A dial whose deadline (the context's) has passed fails with a
	// timeout before the context's own timer has marked it done: the
	// deadline, not ctx.Err, says when the run is over.
	end, _ := ctx.Deadline()
	over := func() bool { return ctx.Err() != nil || !time.Now().Before(end) }
	var logins, failures, cut atomic.Int64
	dialers := make([]*loginDialer, cfg.conns)
	b.start = time.Now()
	stopLive := b.live.every(b.loginLine(&logins, &failures))
	var wg sync.WaitGroup
	for i := range dialers {
		ld := &loginDialer{}
		dialers[i] = ld
		wg.Go(func() {
			for k := i; !over(); k += cfg.conns {
				d := b.devices[k%len(b.devices)]
				t0 := b.now()
				err := b.loginOnce(ctx, d)
				switch {
				case err == nil:
					t1 := b.now()
					ld.lat, ld.at = append(ld.lat, t1-t0), append(ld.at, t1)
					logins.Add(1)
				case over():
					cut.Add(1)
				default:
					failures.Add(1)
					b.fail(err)
				}
			}
		})
	}
	wg.Wait()
	stopLive()
	lr.Logins, lr.Failures, lr.Cut = logins.Load(), failures.Load(), cut.Load()
	lr.Attempts = lr.Logins + lr.Failures
	return dialers
}

// loginOnce logs device d in, then ends the stream and closes the
// connection at once.
func (b *bench) loginOnce(ctx context.Context, d *device) error {
	x, err := dialXMPP(ctx, b.pool.pick(), b.cfg.deviceAddr, b.tls, d.id, d.token, b.cfg.domain, "device "+strconv.Itoa(d.idx), smallReadBuf)
	if err != nil {
		return err
	}
	_ = x.conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
	_, _ = io.WriteString(x.conn, "</stream:stream>")
	return x.conn.Close()
}

// loginLine returns the progress line of the login scenario.
func (b *bench) loginLine(logins, failures *atomic.Int64) func() string {
	var last int64
	lastAt := time.Now()
	return func() string {
		now := time.Now()
		n := logins.Load()
		line := fmt.Sprintf("%5.1fs  logins %d (%.0f/s)  failures %d", now.Sub(b.start).Seconds(), n,
			float64(n-last)/now.Sub(lastAt).Seconds(), failures.Load())
		last, lastAt = n, now
		return line
	}
}

// fillLogin computes the login figures and judges the run.
func (b *bench) fillLogin(r *report, dialers []*loginDialer) {
	lr := r.Login
	r.Server.PID = b.cfg.pid
	r.Server.Sender = b.sender
	var lat, at []int64
	for _, d := range dialers {
		lat, at = append(lat, d.lat...), append(at, d.at...)
	}
	slices.Sort(at)
	r.ElapsedSeconds = time.Since(b.start).Seconds()
	if len(at) > 0 {
		lr.PerSec = round1(float64(lr.Logins) / time.Duration(at[len(at)-1]).Seconds())
	}
	r.Timeline = loginTimeline(dialers)
	lr.Latency = summarize(lat)
	if lr.Logins > 0 {
		lr.ClientCPUMsPerLogin = round3(r.ClientCPUSeconds * 1000 / float64(lr.Logins))
		if r.ServerCPUSeconds != nil {
			v := round3(*r.ServerCPUSeconds * 1000 / float64(lr.Logins))
			lr.ServerCPUMsPerLogin = &v
		}
	}
	b.mu.Lock()
	r.Errors = append(r.Errors, b.errs...)
	b.mu.Unlock()
	r.Complete = true
	if lr.Logins == 0 {
		r.Problems = append(r.Problems, "no login completed")
	}
	if lr.Failures > 0 {
		r.Problems = append(r.Problems, fmt.Sprintf("%d of %d logins failed", lr.Failures, lr.Attempts))
		if perAddr := (b.cfg.conns + b.cfg.sourceAddrs - 1) / b.cfg.sourceAddrs; perAddr > 32 {
			r.Problems = append(r.Problems, fmt.Sprintf("%d dialers per source address exceed ccsd's default --max-unauth-per-addr 32: use --source-addrs %d or lift that limit",
				perAddr, (b.cfg.conns+31)/32))
		}
	}
	r.OK = len(r.Problems) == 0
}

func round3(v float64) float64 { return float64(int64(v*1000+0.5)) / 1000 }

// writeLogin writes the login scenario's text summary.
func (r *report) writeLogin(p func(string, ...any)) {
	lr := r.Login
	p("setup: %.2fs", r.SetupSeconds)
	p("run: %.2fs, %d dialers, each login a new TCP + TLS connection: SASL PLAIN, bind, close", r.ElapsedSeconds, lr.Dialers)
	p("  logins %d (%d failed, %d cut by the end) %9.1f/s   latency %s", lr.Logins, lr.Failures, lr.Cut, lr.PerSec, fmtLatency(lr.Latency))
	per := "unknown (pass --data of the running ccsd)"
	if lr.ServerCPUMsPerLogin != nil {
		per = fmt.Sprintf("%.3f ms", *lr.ServerCPUMsPerLogin)
	}
	p("  cpu per login: ccsd %s, ccsbench %.3f ms (ccsd %s, ccsbench %.2fs in all)", per, lr.ClientCPUMsPerLogin, r.serverCPU(), r.ClientCPUSeconds)
	r.writeTail(p)
}
