package fanout

import (
	"sync/atomic"
	"testing"
)

type countingSession struct{ wakes, evicts atomic.Int32 }

func (s *countingSession) Wake()  { s.wakes.Add(1) }
func (s *countingSession) Evict() { s.evicts.Add(1) }

// TestLocalPresence pins the rules a cluster Presence must keep too: a
// device has one live session, a new one evicts the old exactly once, a
// late Release of the evicted session does not take the new one offline,
// and wake-ups reach only the live session.
func TestLocalPresence(t *testing.T) {
	p := newLocalPresence()
	old, cur := &countingSession{}, &countingSession{}
	if p.Online("d") {
		t.Fatal("online before any session")
	}
	p.Claim("d", old)
	p.Claim("d", cur)
	p.Claim("d", cur) // claiming again is not a replacement
	if old.evicts.Load() != 1 || cur.evicts.Load() != 0 {
		t.Fatalf("evicts: old %d, new %d; want 1, 0", old.evicts.Load(), cur.evicts.Load())
	}
	p.Release("d", old) // the old session's reader stops after the new one logged in
	if !p.Online("d") {
		t.Fatal("releasing the replaced session took the device offline")
	}
	p.Wake("d")
	p.Wake("other")
	if old.wakes.Load() != 0 || cur.wakes.Load() != 1 {
		t.Fatalf("wakes: old %d, new %d; want 0, 1", old.wakes.Load(), cur.wakes.Load())
	}
	p.Release("d", cur)
	if p.Online("d") {
		t.Fatal("online after its session was released")
	}
}
