package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"strconv"
	"time"
)

// offlineReport is what the offline scenario measures after its queue
// phase: the restart of ccsd and the drain of the queue to the devices.
type offlineReport struct {
	// Queued is the messages accepted while every device was offline.
	Queued int64 `json:"queued"`
	// Restarted is whether --restart-cmd ran (false: the drain followed
	// the queueing on the same ccsd).
	Restarted bool `json:"restarted"`
	// RestartCmdSeconds is how long --restart-cmd ran (typically stopping
	// the old ccsd); ReadySeconds the time from its end to the new ccsd
	// answering /readyz with 200 (its new run.json read first).
	RestartCmdSeconds float64 `json:"restart_cmd_seconds"`
	ReadySeconds      float64 `json:"ready_seconds"`
	// ReconnectSeconds is the time for every device to log in again;
	// DrainSeconds the time from the first login to the last queued copy
	// received (logins included, as a phone's reconnect includes its
	// login); DrainPerSec is Drained / DrainSeconds.
	ReconnectSeconds float64 `json:"reconnect_seconds"`
	DrainSeconds     float64 `json:"drain_seconds"`
	Drained          int64   `json:"drained"`
	DrainPerSec      float64 `json:"drain_per_sec"`
	// ServerCPUSeconds is ccsd's CPU time during the drain (the restarted
	// process, with --data); CPUPerThousand the same per 1000 drained.
	ServerCPUSeconds *float64 `json:"drain_server_cpu_seconds,omitempty"`
	CPUPerThousand   *float64 `json:"drain_server_cpu_per_1000,omitempty"`
}

// offline runs the scenario's second half, after measure queued every
// message for devices that never logged in: the app-server connections
// close, --restart-cmd restarts ccsd (if given), then every device logs in
// and acks what it receives until every accepted message has arrived.
// Failures are recorded with b.fail; fill then judges the run.
func (b *bench) offline(ctx context.Context, rep *report) {
	o := &offlineReport{Queued: b.acked.Load()}
	rep.Offline = o
	if b.answered.Load() != int64(b.n) {
		return // the queue phase did not complete: fill says so
	}
	for _, a := range b.apps {
		a.x.close(2 * time.Second) // our own close: not an error
	}
	if b.cfg.restartCmd != "" {
		if err := b.restart(ctx, o); err != nil {
			b.fail(err)
			return
		}
	}
	b.expected.Store(b.acked.Load()) // every accepted message must arrive, once
	b.drain(ctx, o)
}

// restart runs --restart-cmd, then waits for a ccsd of another instance
// to write run.json and answer /readyz, and points the run at it.
func (b *bench) restart(ctx context.Context, o *offlineReport) error {
	b.logf("queued %d; restarting ccsd: %s", o.Queued, b.cfg.restartCmd)
	t0 := time.Now()
	cmd := exec.CommandContext(ctx, "sh", "-c", b.cfg.restartCmd)
	cmd.Stdout, cmd.Stderr = b.log, b.log
	// A command that leaves a server running in the background may leave
	// it holding the output pipe: wait for the pipe at most a second after
	// the command exits.
	cmd.WaitDelay = time.Second
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("--restart-cmd: %w", err)
	}
	t1 := time.Now()
	o.Restarted, o.RestartCmdSeconds = true, round3(t1.Sub(t0).Seconds())
	info, err := b.waitReady(ctx)
	if err != nil {
		return err
	}
	o.ReadySeconds = round3(time.Since(t1).Seconds())
	b.logf("ccsd ready %.3fs after the restart command (which took %.3fs)", o.ReadySeconds, o.RestartCmdSeconds)
	c := b.cfg
	c.xmppAddr, c.deviceAddr, c.httpAddr, c.adminAddr = info.XMPPAddr, info.DeviceAddr, info.HTTPAddr, info.AdminAddr
	c.pid, c.instance = info.PID, info.Instance
	b.api.close()
	b.api = newHTTPAPI(c.httpAddr, c.adminAddr, b.tls, b.pool, 16)
	return nil
}

// waitReady polls, every 10 ms up to --ready-timeout, for a run.json of
// a new instance whose admin endpoint answers /readyz with 200.
func (b *bench) waitReady(ctx context.Context) (runInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.readyTimeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		info, err := readRunInfo(b.cfg.data)
		if err == nil && info.Instance != "" && info.Instance != b.cfg.instance && checkLoopback("admin_addr", info.AdminAddr) == nil {
			if ready(ctx, client, info.AdminAddr) {
				return info, nil
			}
		}
		select {
		case <-ctx.Done():
			return runInfo{}, fmt.Errorf("the restarted ccsd was not ready within --ready-timeout %v", b.cfg.readyTimeout)
		case <-tick.C:
		}
	}
}

// ready reports whether the admin endpoint at addr answers /readyz with 200.
func ready(ctx context.Context, client *http.Client, addr string) bool {
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/readyz", nil)
	if err != nil {
		return false
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// drain logs every device in (16 at a time, each acking what it receives
// from its login on) and waits, up to --duration, until every accepted
// message has arrived.
func (b *bench) drain(ctx context.Context, o *offlineReport) {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.duration)
	defer cancel()
	cpu0, cpuErr := serverCPU(b.cfg.pid)
	before := b.unique.Load()
	start := time.Now()
	err := parallel(ctx, len(b.devices), 16, func(ctx context.Context, i int) error {
		d := b.devices[i]
		x, err := dialXMPP(ctx, b.pool.pick(), b.cfg.deviceAddr, b.tls, d.id, d.token, b.cfg.domain, "device "+strconv.Itoa(i), bigReadBuf)
		if err != nil {
			return err
		}
		d.x = x
		x.start(func(st *stanza) { b.onDevice(d, st) }, b.ended)
		return nil
	})
	o.ReconnectSeconds = round3(time.Since(start).Seconds())
	if err != nil {
		b.fail(fmt.Errorf("reconnect: %w", err))
		return
	}
	stopLive := b.live.every(func() string {
		return fmt.Sprintf("drain: %d of %d received", b.unique.Load()-before, b.expected.Load()-before)
	})
	defer stopLive()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for b.unique.Load() < b.expected.Load() {
		select {
		case <-ctx.Done():
			if !errors.Is(ctx.Err(), context.Canceled) {
				b.logf("--duration %v reached before the drain completed", b.cfg.duration)
			}
			return
		case <-tick.C:
		}
	}
	o.DrainSeconds = round3(time.Since(start).Seconds())
	o.Drained = b.unique.Load() - before
	o.DrainPerSec = round1(float64(o.Drained) / o.DrainSeconds)
	if cpu1, err := serverCPU(b.cfg.pid); err == nil && cpuErr == nil && b.cfg.pid != 0 {
		v := round3(cpu1 - cpu0)
		o.ServerCPUSeconds = &v
		if o.Drained > 0 {
			per := round3(v * 1000 / float64(o.Drained))
			o.CPUPerThousand = &per
		}
	}
}

// writeOffline writes the offline scenario's lines of the text summary.
func (r *report) writeOffline(p func(string, ...any)) {
	o := r.Offline
	if o.Restarted {
		p("  restart: command %.3fs, then ready (/readyz 200) in %.3fs", o.RestartCmdSeconds, o.ReadySeconds)
	} else {
		p("  restart: none (no --restart-cmd): drained from the same ccsd")
	}
	cpu := "ccsd CPU unknown"
	if o.ServerCPUSeconds != nil && o.CPUPerThousand != nil {
		cpu = fmt.Sprintf("ccsd %.2f CPU-s, %.3f per 1000", *o.ServerCPUSeconds, *o.CPUPerThousand)
	}
	p("  drain: %d of %d queued received in %.3fs, %.1f/s (%d devices logged in within %.3fs); %s",
		o.Drained, o.Queued, o.DrainSeconds, o.DrainPerSec, r.Config.Devices, o.ReconnectSeconds, cpu)
}
