package device_test

import (
	"context"
	"errors"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/ccsd/ccsd/device"
)

// collector is a handler that records what it was given, in order.
type collector struct {
	mu   sync.Mutex
	msgs []*device.Message
	ch   chan *device.Message
	fail func(*device.Message) error // nil: accept everything
}

func newCollector() *collector { return &collector{ch: make(chan *device.Message, 2000)} }

func (c *collector) handle(_ context.Context, m *device.Message) error {
	if c.fail != nil {
		if err := c.fail(m); err != nil {
			return err
		}
	}
	c.mu.Lock()
	c.msgs = append(c.msgs, m)
	c.mu.Unlock()
	c.ch <- m
	return nil
}

// next returns the next message handled, or fails the test.
func (c *collector) next(t *testing.T) *device.Message {
	t.Helper()
	select {
	case m := <-c.ch:
		return m
	case <-time.After(wait):
		t.Fatalf("no message handled in %v", wait)
		return nil
	}
}

// TestRegisterIsSavedAndReused: the state file (mode 0600) makes a client
// of a new process the same device: same android id, same registration
// token, and the messages queued for it while no process ran.
func TestRegisterIsSavedAndReused(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	col := newCollector()
	cfg := s.config(col.handle)
	c1, token := s.newDevice(cfg, "com.example.chat")
	fi, err := os.Stat(cfg.StateFile)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("state file mode %v, want 0600", fi.Mode().Perm())
	}
	s.send(token, map[string]string{"hello": "while offline"})

	c2, err := device.New(cfg) // a new process, the same file
	if err != nil {
		t.Fatal(err)
	}
	if a, b := c1.State(), c2.State(); a.AndroidID != b.AndroidID || len(b.Registrations) != 1 || b.Registrations[0].Token != token {
		t.Fatalf("state not reloaded: %+v vs %+v", a, b)
	}
	again, err := c2.Register(context.Background(), s.Sender, "com.example.chat")
	if err != nil || again != token {
		t.Fatalf("register again: %q, %v; want the same token %q", again, err, token)
	}
	run(t, c2)
	m := col.next(t)
	if m.Data["hello"] != "while offline" || m.To != token || m.From != s.Sender || m.Category != "com.example.chat" || m.Sent.IsZero() {
		t.Fatalf("got %+v", m)
	}
}

// TestAckOnlyAfterHandlerSucceeds: a handler error nacks the message,
// which ccsd offers again on the next session; a message handled without
// error is acked and never comes again. The proof of "never" is a later
// message: the queue is delivered in order, so once it arrives, nothing
// queued before it is left.
func TestAckOnlyAfterHandlerSucceeds(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	col := newCollector()
	var mu sync.Mutex
	failures := 0
	col.fail = func(m *device.Message) error {
		mu.Lock()
		defer mu.Unlock()
		if m.Data["n"] == "1" && failures == 0 {
			failures++
			return errors.New("the app's database is down")
		}
		return nil
	}
	c, token := s.newDevice(s.config(col.handle), "com.example")
	s.send(token, map[string]string{"n": "1"})
	stop := run(t, c)
	s.send(token, map[string]string{"n": "2"})
	if m := col.next(t); m.Data["n"] != "2" {
		t.Fatalf("first handled: %v, want n=2 (n=1 failed)", m.Data)
	}
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run returned %v, want context.Canceled", err)
	}
	run(t, c) // the next session: the nacked message again, nothing else
	if m := col.next(t); m.Data["n"] != "1" {
		t.Fatalf("after reconnecting: %v, want the nacked n=1", m.Data)
	}
	s.send(token, map[string]string{"n": "3"})
	if m := col.next(t); m.Data["n"] != "3" {
		t.Fatalf("then %v, want n=3: n=1 and n=2 were acked", m.Data)
	}
}

// TestUpstreamAckAndNack: Send returns nil once ccsd acked the message,
// and a *NackError with the code when it refused it.
func TestUpstreamAckAndNack(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--upstream-rate", "0") // 250 at once is past a phone's rate
	c, _ := s.newDevice(s.config(nil), "com.example")
	run(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	id, err := c.Send(ctx, device.Upstream{Sender: s.Sender, Category: "com.example", Data: map[string]any{"k": "v"}})
	if err != nil || id == "" {
		t.Fatalf("send: %q, %v", id, err)
	}
	_, err = c.Send(ctx, device.Upstream{Sender: s.Sender, Category: "com.other", MessageID: "u-x"})
	var nack *device.NackError
	if !errors.As(err, &nack) || nack.Code != "BAD_REGISTRATION" || nack.MessageID != "u-x" || nack.Temporary() {
		t.Fatalf("send for an unregistered app: %v, want a BAD_REGISTRATION nack", err)
	}
	// Many at once: Send keeps within ccsd's window of 100 unanswered.
	var wg sync.WaitGroup
	errs := make(chan error, 250)
	for range 250 {
		wg.Go(func() {
			_, err := c.Send(ctx, device.Upstream{Sender: s.Sender, Category: "com.example"})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("one of 250 concurrent sends: %v", err)
		}
	}
}

// TestGroupMessageAndDeleted: a device sends to its group's
// notification_key and the other member receives it from the key; a
// registration that overflowed its queue gets deleted_messages.
func TestGroupMessageAndDeleted(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--max-queued-per-registration", "2")
	colA, colB := newCollector(), newCollector()
	a, tokA := s.newDevice(s.config(colA.handle), "com.example")
	b, tokB := s.newDevice(s.config(colB.handle), "com.example")
	code, body := s.post("/gcm/notification", map[string]any{"operation": "create", "notification_key_name": "user-1", "registration_ids": []string{tokA, tokB}})
	if code != 200 {
		t.Fatalf("create group: %d %s", code, body)
	}
	var g struct {
		Key string `json:"notification_key"`
	}
	if err := jsonUnmarshal(body, &g); err != nil || g.Key == "" {
		t.Fatalf("create group: %s", body)
	}
	for i := range 3 { // the third overflows b's queue of 2
		s.send(tokB, map[string]string{"i": string(rune('0' + i))})
	}
	run(t, a)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if _, err := a.Send(ctx, device.Upstream{NotificationKey: g.Key, Category: "com.example", Data: map[string]any{"read": "m-7"}}); err != nil {
		t.Fatalf("send to the group: %v", err)
	}
	run(t, b)
	if m := colB.next(t); !m.Deleted || m.To != tokB || len(m.Data) != 0 {
		t.Fatalf("b's first message: %+v, want deleted_messages", m)
	}
	if m := colB.next(t); m.From != g.Key || m.Data["read"] != "m-7" || m.NotificationKey != g.Key {
		t.Fatalf("b's second message: %+v, want a's group message", m)
	}
}
