package device_test

import (
	"context"
	"strings"
	"testing"
	"time"
)

// sendAny sends a downstream message to token over /gcm/send with data
// {"id": id} and the given fields, and fails unless it was accepted.
func (s *server) sendAny(token, id string, fields map[string]any) {
	s.t.Helper()
	msg := map[string]any{"to": token, "data": map[string]string{"id": id}}
	for k, v := range fields {
		msg[k] = v
	}
	code, body := s.post("/gcm/send", msg)
	if code != 200 || !strings.Contains(string(body), `"success":1`) {
		s.t.Fatalf("/gcm/send %s: %d %s", id, code, body)
	}
}

// nextIDs returns the data ids of the next n messages handled.
func (c *collector) nextIDs(t *testing.T, n int) []string {
	t.Helper()
	var out []string
	for range n {
		out = append(out, c.next(t).Data["id"].(string))
	}
	return out
}

// TestDozeAwake: over a real session, once Doze returns (ccsd acked it) a
// high-priority message is delivered at once and normal and
// delay_while_idle ones (even high) are held; once Awake returns they come,
// in the order they were sent. A normal message sent before the high one
// would otherwise have come first.
func TestDozeAwake(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	col := newCollector()
	c, token := s.newDevice(s.config(col.handle), "com.example.chat")
	run(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := c.Doze(ctx); err != nil {
		t.Fatal(err)
	}
	s.sendAny(token, "n-1", nil)
	s.sendAny(token, "d-1", map[string]any{"delay_while_idle": true, "priority": "high"})
	s.sendAny(token, "h-1", map[string]any{"priority": "high"})
	if got := col.nextIDs(t, 1); got[0] != "h-1" {
		t.Fatalf("first delivered %q while dozing, want only h-1", got)
	}
	if err := c.Awake(ctx); err != nil {
		t.Fatal(err)
	}
	if got := col.nextIDs(t, 2); got[0] != "n-1" || got[1] != "d-1" {
		t.Fatalf("after Awake: %q, want [n-1 d-1]", got)
	}
}

// TestDozeMaxDelay: with --max-doze-delay, a dozing device gets its
// normal messages once the delay has passed, and its delay_while_idle
// ones only when awake.
func TestDozeMaxDelay(t *testing.T) {
	t.Parallel()
	const delay = time.Second
	s := startServer(t, "--max-doze-delay", delay.String())
	col := newCollector()
	c, token := s.newDevice(s.config(col.handle), "com.example.chat")
	run(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	dozed := time.Now() // before: ccsd starts its clock before it acks
	if err := c.Doze(ctx); err != nil {
		t.Fatal(err)
	}
	s.sendAny(token, "d-1", map[string]any{"delay_while_idle": true})
	s.sendAny(token, "n-1", nil)
	if got := col.nextIDs(t, 1); got[0] != "n-1" {
		t.Fatalf("released %q, want n-1 (d-1 waits for Awake)", got)
	}
	if e := time.Since(dozed); e < delay {
		t.Fatalf("n-1 came %v after Doze, before --max-doze-delay %v", e, delay)
	}
	if err := c.Awake(ctx); err != nil {
		t.Fatal(err)
	}
	if got := col.nextIDs(t, 1); got[0] != "d-1" {
		t.Fatalf("after Awake: %q, want d-1", got)
	}
}
