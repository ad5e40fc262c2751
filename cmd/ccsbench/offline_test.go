package main

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/ccsd/ccsd/internal/ccsdtest"
)

// TestOffline queues messages for devices that never logged in, restarts
// ccsd through --restart-cmd (a real SIGTERM and a new process on the same
// data directory, new ports), reconnects the devices and drains: every
// accepted message arrives exactly once, from the restarted server, and
// the report gives the restart and drain figures.
func TestOffline(t *testing.T) {
	dir := t.TempDir()
	p, err := ccsdtest.Start(ccsdBin, filepath.Join(dir, "data"), "--drain-grace", "1s",
		"--checkin-burst", "0", "--register-burst", "0", "--downstream-rate", "0", "--max-queued-per-registration", "0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Stop(syscall.SIGTERM) })
	oldPID := p.Info.PID
	// The command asks the test to restart ccsd and waits for it to be done.
	asked, done := filepath.Join(dir, "asked"), filepath.Join(dir, "done")
	cmd := "touch " + asked + "; i=0; while [ ! -e " + done + " ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done"
	restarted := make(chan error, 1)
	go func() {
		deadline := time.Now().Add(60 * time.Second)
		for time.Now().Before(deadline) {
			if _, err := os.Stat(asked); err == nil {
				err := p.Stop(syscall.SIGTERM)
				if err == nil {
					err = p.Restart()
				}
				os.WriteFile(done, nil, 0o600)
				restarted <- err
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		restarted <- os.ErrDeadlineExceeded
	}()
	code, r, stderr := runBench(t, "--data", p.Data, "--scenario", "offline", "--devices", "20", "--conns", "2",
		"--messages", "400", "--restart-cmd", cmd, "--duration", "30s")
	if err := <-restarted; err != nil {
		t.Fatalf("restart: %v", err)
	}
	if code != exitOK || r == nil || !r.OK {
		t.Fatalf("exit %d, report %+v\nstderr:\n%s", code, r, stderr)
	}
	o := r.Offline
	if o == nil || !o.Restarted || o.Queued != 400 || o.Drained != 400 || r.Delivered != 400 || r.Duplicates != 0 || r.Missing != 0 {
		t.Fatalf("offline report %+v; delivered %d, duplicates %d, missing %d", o, r.Delivered, r.Duplicates, r.Missing)
	}
	if o.ReadySeconds <= 0 || o.DrainSeconds <= 0 || o.DrainPerSec <= 0 || o.ReconnectSeconds <= 0 {
		t.Fatalf("offline figures %+v", o)
	}
	if p.Info.PID == oldPID {
		t.Fatalf("ccsd was not restarted (pid %d)", oldPID)
	}
}

// TestOfflineFlags: --restart-cmd belongs to the offline scenario and
// needs --data, where the restarted ccsd writes its new addresses.
func TestOfflineFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--scenario", "queue", "--restart-cmd", "true", "--data", server(t).Data},
		{"--scenario", "offline", "--restart-cmd", "true", "--xmpp-addr", "127.0.0.1:1", "--device-addr", "127.0.0.1:1",
			"--http-addr", "127.0.0.1:1", "--admin-addr", "127.0.0.1:1", "--ca", "x"},
	} {
		if code, _, _ := runBench(t, args...); code != exitUsage {
			t.Errorf("%v: exit %d, want %d", args, code, exitUsage)
		}
	}
}
