package device_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ccsd/ccsd/device"
)

// TestForgottenDevice: a state file whose device the server does not know
// (here: a new server, as after "rm -rf ccsd-data") makes Run stop with
// ErrUnauthorized rather than retry for ever, and Register check in again
// as a new device.
func TestForgottenDevice(t *testing.T) {
	t.Parallel()
	old := startServer(t)
	cfg := old.config(nil)
	c, _ := old.newDevice(cfg, "com.example")
	oldID := c.State().AndroidID

	s := startServer(t)
	cfg2 := s.config(nil)
	cfg2.StateFile = cfg.StateFile // the same device file, another server
	c2, err := device.New(cfg2)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := c2.Run(ctx); !errors.Is(err, device.ErrUnauthorized) {
		t.Fatalf("Run with a device the server does not know: %v, want ErrUnauthorized", err)
	}
	token, err := c2.Register(ctx, s.Sender, "com.example")
	if err != nil {
		t.Fatal(err)
	}
	st := c2.State()
	if st.AndroidID == oldID || len(st.Registrations) != 1 || st.Registrations[0].Token != token || st.Registrations[0].Sender != s.Sender {
		t.Fatalf("after checking in again: %+v (old id %s)", st, oldID)
	}
	b, _ := os.ReadFile(cfg.StateFile)
	if !strings.Contains(string(b), st.AndroidID) || strings.Contains(string(b), oldID) {
		t.Fatalf("state file not rewritten: %s", b)
	}
}

// TestTopicSubscribe: a device subscribes its token to a topic, as an
// app's subscribeToTopic does, and receives what is sent to the topic.
func TestTopicSubscribe(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	col := newCollector()
	c, token := s.newDevice(s.config(col.handle), "com.example")
	ctx := context.Background()
	if err := c.Subscribe(ctx, token, "news"); err != nil {
		t.Fatal(err)
	}
	var he *device.HTTPError
	if err := c.Subscribe(ctx, token, "bad topic!"); !errors.As(err, &he) || he.Status != 400 || he.Code != "INVALID_ARGUMENT" {
		t.Fatalf("subscribe to a bad name: %v", err)
	}
	run(t, c)
	if code, body := s.post("/gcm/send", map[string]any{"to": "/topics/news", "data": map[string]string{"t": "1"}}); code != 200 {
		t.Fatalf("topic send: %d %s", code, body)
	}
	if m := col.next(t); m.From != "/topics/news" || m.To != token || m.Data["t"] != "1" {
		t.Fatalf("got %+v", m)
	}
	if err := c.Unsubscribe(ctx, token, "news"); err != nil {
		t.Fatal(err)
	}
}

// TestReplacedSessionStops: a second process with the same state file
// logs in; ccsd keeps one session per device, so the first gets
// <conflict/>, and its Run returns ErrReplaced instead of logging in
// again (which would evict the second, and so on for ever).
func TestReplacedSessionStops(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	cfg := s.config(nil)
	first, _ := s.newDevice(cfg, "com.example")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ran := make(chan error, 1)
	go func() { ran <- first.Run(ctx) }()
	select {
	case <-first.Online():
	case err := <-ran:
		t.Fatalf("first Run: %v", err)
	}
	second, err := device.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	run(t, second)
	select {
	case err := <-ran:
		if !errors.Is(err, device.ErrReplaced) {
			t.Fatalf("first Run returned %v, want ErrReplaced", err)
		}
	case <-time.After(wait):
		t.Fatal("the replaced session's Run did not return")
	}
	if !online(second) {
		t.Fatal("the second session is not online")
	}
}
