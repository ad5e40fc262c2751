package device_test

import (
	"errors"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/ccsd/ccsd/device"
)

// online reports whether c has a session now.
func online(c *device.Client) bool {
	select {
	case <-c.Online():
		return true
	default:
		return false
	}
}

// TestKeepaliveDetectsADeadServer: a server that stops answering (SIGSTOP:
// the TCP connection stays open, nothing reads it) is noticed by the
// unanswered ping, and the client reconnects by itself once it answers
// again.
func TestKeepaliveDetectsADeadServer(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	col := newCollector()
	cfg := s.config(col.handle)
	cfg.Keepalive, cfg.PingTimeout = 100*time.Millisecond, 300*time.Millisecond
	cfg.DialTimeout = time.Second
	c, token := s.newDevice(cfg, "com.example")
	run(t, c)
	if err := s.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := true
	defer func() {
		if stopped {
			_ = s.Signal(syscall.SIGCONT)
		}
	}()
	poll(t, func() error {
		if online(c) {
			return errors.New("still online with a stopped server")
		}
		return nil
	})
	if err := s.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	stopped = false
	poll(t, func() error {
		if !online(c) {
			return errors.New("not online again after SIGCONT")
		}
		return nil
	})
	s.send(token, map[string]string{"after": "cont"})
	if m := col.next(t); m.Data["after"] != "cont" {
		t.Fatalf("got %v", m.Data)
	}
}

// poll calls f until it returns nil, failing the test after wait.
func poll(t *testing.T, f func() error) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(fmt.Errorf("after %v: %w", wait, err))
		}
		time.Sleep(10 * time.Millisecond)
	}
}
