package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"time"
)

// idleReport holds the idle scenario's figures. The per-session figures
// are (after - before) / sessions: "before" is read once the sender,
// devices, registrations and app-server connections exist, "after" at the
// end of the hold with every session still open.
type idleReport struct {
	Sessions       int     `json:"sessions"`      // device sessions asked for (--devices)
	Held           int     `json:"sessions_held"` // open through the whole hold
	AppConns       int     `json:"app_conns"`     // idle app-server connections, opened before "before"
	ConnectSeconds float64 `json:"connect_seconds"`
	ConnectPerSec  float64 `json:"connects_per_sec"` // device logins per second while connecting
	HoldSeconds    float64 `json:"hold_seconds"`

	RSSBefore     *int64   `json:"rss_before_bytes,omitempty"` // ccsd's VmRSS (/proc/PID/status)
	RSSAfter      *int64   `json:"rss_after_bytes,omitempty"`
	RSSPerSession *float64 `json:"rss_per_session_bytes,omitempty"`

	// From ccsd's /metrics when it has them: go_memstats_heap_alloc_bytes
	// and go_goroutines.
	HeapBefore           *float64 `json:"heap_alloc_before_bytes,omitempty"`
	HeapAfter            *float64 `json:"heap_alloc_after_bytes,omitempty"`
	HeapPerSession       *float64 `json:"heap_per_session_bytes,omitempty"`
	GoroutinesBefore     *float64 `json:"goroutines_before,omitempty"`
	GoroutinesAfter      *float64 `json:"goroutines_after,omitempty"`
	GoroutinesPerSession *float64 `json:"goroutines_per_session,omitempty"`

	// HeapAfterGC says the heap figures follow a collection ccsd made on
	// request (/debug/pprof/heap?gc=1) just before each sample.
	HeapAfterGC bool `json:"heap_after_gc"`

	ClientFileLimit uint64 `json:"client_file_limit,omitempty"` // ccsbench's open-file limit
	// ClientRSSPerSession is what each session cost ccsbench itself, to
	// plan how many one process can hold.
	ClientRSSPerSession *float64 `json:"client_rss_per_session_bytes,omitempty"`
}

// serverSample is what ccsd's memory looked like at one moment.
type serverSample struct {
	rss     int64
	rssOK   bool
	metrics map[string]float64 // nil without /metrics
	gc      bool               // ccsd collected garbage just before
}

// sampleServer has ccsd collect its garbage when it serves pprof, then
// reads its RSS (with a known pid) and its /metrics.
func (b *bench) sampleServer(ctx context.Context) serverSample {
	var s serverSample
	s.gc = b.api.collect(ctx)
	if rss, err := serverRSS(b.cfg.pid); err == nil {
		s.rss, s.rssOK = rss, true
	}
	s.metrics = b.api.metrics(ctx)
	return s
}

// runIdle is the idle scenario: it opens --devices device sessions and
// holds them, with --conns app-server connections, for --duration, and
// reports what each session costs ccsd.
func (b *bench) runIdle(ctx context.Context, rep *report) (*report, error) {
	cfg := b.cfg
	ir := &idleReport{Sessions: cfg.devices, AppConns: cfg.conns}
	ir.ClientFileLimit, _ = raiseFileLimit()
	setupStart := time.Now()
	sctx, cancel := context.WithTimeout(ctx, cfg.setupTimeout)
	defer cancel()
	if err := b.setupRegs(sctx, true); err != nil {
		return nil, setupError(err)
	}
	if err := b.connectApps(sctx); err != nil {
		return nil, setupError(err)
	}
	rep.SetupSeconds = time.Since(setupStart).Seconds()
	before := b.sampleServer(ctx)
	self0, selfErr := serverRSS(os.Getpid())
	connStart := time.Now()
	if err := b.connectDevices(sctx); err != nil {
		return nil, fmt.Errorf("opening the sessions: %w", err)
	}
	ir.ConnectSeconds = time.Since(connStart).Seconds()
	ir.ConnectPerSec = round1(float64(cfg.devices) / ir.ConnectSeconds)
	b.logf("setup done in %.2fs, %d sessions opened in %.2fs", rep.SetupSeconds, cfg.devices, ir.ConnectSeconds)
	rep.Idle = ir

	probe := b.startProbe(rep)
	b.hold(ctx)
	after := b.sampleServer(ctx)
	if self1, err := serverRSS(os.Getpid()); err == nil && selfErr == nil {
		v := round1(float64(self1-self0) / float64(cfg.devices))
		ir.ClientRSSPerSession = &v
	}
	probe.stop(rep)
	rep.ElapsedSeconds = time.Since(b.start).Seconds()
	ir.HoldSeconds = rep.ElapsedSeconds
	ir.Held = cfg.devices - int(b.deviceEnds.Load())
	ir.fill(before, after)
	b.fillIdle(rep)
	return rep, nil
}

// hold starts every connection's reader and waits --duration, or until a
// stream ends or ctx is done.
func (b *bench) hold(parent context.Context) {
	ctx, cancel := context.WithTimeout(parent, b.cfg.duration)
	defer cancel()
	ctx, abort := context.WithCancelCause(ctx)
	defer abort(nil)
	b.mu.Lock()
	b.abort = abort
	b.mu.Unlock()
	b.start = time.Now()
	for _, d := range b.devices {
		d.x.start(func(st *stanza) { b.onIdle(d.x, st) }, func(err error) {
			if err != nil {
				b.deviceEnds.Add(1)
			}
			b.ended(err)
		})
	}
	for _, a := range b.apps {
		a.x.start(func(st *stanza) { b.onIdle(a.x, st) }, b.ended)
	}
	stopLive := b.live.every(func() string {
		return fmt.Sprintf("%5.1fs  holding %d sessions", time.Since(b.start).Seconds(), len(b.devices)-int(b.deviceEnds.Load()))
	})
	defer stopLive()
	<-ctx.Done()
	if cause := context.Cause(ctx); !errors.Is(cause, context.DeadlineExceeded) && !errors.Is(cause, context.Canceled) {
		b.logf("hold stopped: %v", cause)
	}
}

// onIdle handles a stanza read by an idle connection: nothing is expected
// but a stream error.
func (b *bench) onIdle(x *xconn, st *stanza) {
	if !b.streamError(x, st) {
		b.otherStanzas.Add(1)
	}
}

// fill computes the per-session figures from the two samples.
func (ir *idleReport) fill(before, after serverSample) {
	n := float64(ir.Sessions)
	per := func(a, b float64) *float64 {
		v := (b - a) / n
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil
		}
		v = round1(v)
		return &v
	}
	if before.rssOK && after.rssOK {
		ir.RSSBefore, ir.RSSAfter = &before.rss, &after.rss
		ir.RSSPerSession = per(float64(before.rss), float64(after.rss))
	}
	pick := func(name string, dst0, dst1, dstPer **float64) {
		v0, ok0 := before.metrics[name]
		v1, ok1 := after.metrics[name]
		if ok0 && ok1 {
			*dst0, *dst1, *dstPer = &v0, &v1, per(v0, v1)
		}
	}
	pick("go_memstats_heap_alloc_bytes", &ir.HeapBefore, &ir.HeapAfter, &ir.HeapPerSession)
	ir.HeapAfterGC = ir.HeapPerSession != nil && before.gc && after.gc
	pick("go_goroutines", &ir.GoroutinesBefore, &ir.GoroutinesAfter, &ir.GoroutinesPerSession)
}

// fillIdle fills the common fields of an idle run and judges it.
func (b *bench) fillIdle(r *report) {
	r.Server.PID = b.cfg.pid
	r.Server.Sender = b.sender
	r.OtherStanzas = b.otherStanzas.Load()
	b.mu.Lock()
	r.Errors = append(r.Errors, b.errs...)
	b.mu.Unlock()
	ir := r.Idle
	r.Complete = ir.Held == ir.Sessions
	if !r.Complete {
		r.Problems = append(r.Problems, fmt.Sprintf("%d of %d sessions ended during the hold", ir.Sessions-ir.Held, ir.Sessions))
	}
	if len(r.Errors) > 0 {
		r.Problems = append(r.Problems, fmt.Sprintf("%d connection or protocol errors", len(r.Errors)))
	}
	if ir.RSSPerSession != nil && *ir.RSSPerSession <= 0 {
		// The Go runtime reused, or returned to the system, memory that
		// earlier load had left: the difference says nothing of a session.
		r.Warnings = append(r.Warnings, "ccsd's RSS did not grow with the sessions: it reused or released memory left by earlier load; restart ccsd for a clean figure")
	}
	r.OK = len(r.Problems) == 0
}

// writeIdle writes the idle scenario's text summary.
func (r *report) writeIdle(p func(string, ...any)) {
	ir := r.Idle
	p("setup: %.2fs; %d device sessions opened in %.2fs (%.1f/s), %d app-server connections",
		r.SetupSeconds, ir.Sessions, ir.ConnectSeconds, ir.ConnectPerSec, ir.AppConns)
	p("hold: %d of %d sessions held for %.2fs", ir.Held, ir.Sessions, ir.HoldSeconds)
	kib := func(v *float64) string {
		if v == nil {
			return "unknown"
		}
		return fmt.Sprintf("%.1f KiB", *v/1024)
	}
	if ir.RSSPerSession != nil {
		p("  ccsd RSS %.1f MiB -> %.1f MiB: %s per session", float64(*ir.RSSBefore)/(1<<20), float64(*ir.RSSAfter)/(1<<20), kib(ir.RSSPerSession))
	} else {
		p("  ccsd RSS: unknown (pass --data of a ccsd on this machine)")
	}
	if ir.HeapPerSession != nil {
		gc := "at whatever time ccsd last collected"
		if ir.HeapAfterGC {
			gc = "live, after a collection"
		}
		p("  ccsd Go heap (%s) %.1f MiB -> %.1f MiB: %s per session", gc, *ir.HeapBefore/(1<<20), *ir.HeapAfter/(1<<20), kib(ir.HeapPerSession))
	} else {
		p("  ccsd Go heap: unknown (no /metrics on the admin endpoint)")
	}
	if ir.GoroutinesPerSession != nil {
		p("  ccsd goroutines %.0f -> %.0f: %.2f per session", *ir.GoroutinesBefore, *ir.GoroutinesAfter, *ir.GoroutinesPerSession)
	}
	if ir.ClientRSSPerSession != nil {
		p("  ccsbench RSS: %.1f KiB per session (open-file limit %d)", *ir.ClientRSSPerSession/1024, ir.ClientFileLimit)
	}
	p("  cpu during the hold: ccsbench %.2fs, ccsd %s", r.ClientCPUSeconds, r.serverCPU())
	r.writeTail(p)
}
