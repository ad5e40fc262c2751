package device_test

import (
	"bytes"
	"context"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ccsd/ccsd/device"
)

// countWriter counts the log lines holding a marker.
type countWriter struct {
	marker []byte
	n      atomic.Int64
}

func (w *countWriter) Write(p []byte) (int, error) {
	w.n.Add(int64(bytes.Count(p, w.marker)))
	return len(p), nil
}

// TestCrashMidStream: 1,000 messages are queued; while the device is
// receiving them, ccsd is killed with SIGKILL and started again (on other
// ports: the client finds them in run.json). The handler sees each of the
// 1,000 ids exactly once: every message is delivered again after the crash
// unless its ack was committed, and those handled whose ack was lost are
// dropped by the client's dedup window, not handed to the handler twice.
func TestCrashMidStream(t *testing.T) {
	t.Parallel()
	const total, killAt = 1000, 300
	s := startServer(t, "--downstream-rate", "0", "--max-queued-per-registration", "0")
	var (
		mu      sync.Mutex
		seen    = map[string]int{}
		calls   int
		reached = make(chan struct{})
		resume  = make(chan struct{})
		all     = make(chan struct{})
	)
	handler := func(_ context.Context, m *device.Message) error {
		mu.Lock()
		seen[m.Data["i"].(string)]++
		calls++
		n := calls
		mu.Unlock()
		switch n {
		case killAt:
			// Hold the handler while ccsd dies: the messages after this
			// one are in flight, unacked, and their acks will go to a
			// dead connection.
			close(reached)
			<-resume
		case total:
			close(all)
		}
		return nil
	}
	cfg := s.config(nil)
	cfg.Handler = device.HandlerFunc(handler)
	dups := &countWriter{marker: []byte("delivered again")}
	cfg.Logger = slog.New(slog.NewTextHandler(dups, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c, token := s.newDevice(cfg, "com.example")
	for i := range total {
		s.send(token, map[string]string{"i": strconv.Itoa(i)})
	}
	run(t, c)
	select {
	case <-reached:
	case <-time.After(wait):
		t.Fatalf("handler not at %d after %v", killAt, wait)
	}
	s.Kill()
	close(resume)
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-all:
	case <-time.After(2 * wait):
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("handler saw %d of %d messages after the restart", len(seen), total)
	}
	mu.Lock()
	defer mu.Unlock()
	for i := range total {
		if n := seen[strconv.Itoa(i)]; n != 1 {
			t.Errorf("message %d handled %d times", i, n)
		}
	}
	if len(seen) != total || calls != total {
		t.Errorf("%d distinct ids in %d handler calls, want %d and %d", len(seen), calls, total, total)
	}
	if dups.n.Load() == 0 {
		t.Errorf("no message came again after the crash: the test did not crash mid-stream")
	}
	t.Logf("%d messages delivered again after SIGKILL and dropped by the client", dups.n.Load())
}
