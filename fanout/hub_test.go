package fanout

import (
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/ccsd/ccsd/store"
)

// upstreamJSONOf is what an app server receives for upstreamMsg(i) from
// reg0.
func upstreamJSONOf(i int) string {
	return `{"category":"com.example","data":{"k":"v"},"message_id":"u-` + strconv.Itoa(i) + `","from":"reg0","time_to_live":86400}`
}

// queueUpstream has device dev0 send upstreamMsg(from..to-1), each once
// the previous is acked, and fails unless every one was acked.
func queueUpstream(t *testing.T, r *Router, from, to int) {
	t.Helper()
	c := &fakeConn{id: "dev0"}
	d := r.OpenDevice(c)
	defer d.Closed()
	for i, m := range answers(t, d, c, from, to) {
		if want := `{"message_id":"u-` + strconv.Itoa(from+i) + `","message_type":"ack"}`; c.payloads()[i] != want {
			t.Fatalf("device answer %d: %v, want %s", i, m, want)
		}
	}
}

// openApp opens an app-server connection of sender 123.
func openApp(t *testing.T, r *Router) (*AppServerStream, *fakeConn) {
	t.Helper()
	c := &fakeConn{id: "123"}
	s := r.OpenAppServer(c)
	// A test that fails midway leaves it open, and the router's Close
	// would wait for its hub forever.
	t.Cleanup(func() {
		r.mu.Lock()
		_, open := r.appConns[s.id]
		r.mu.Unlock()
		if open {
			s.Closed()
		}
	})
	return s, c
}

func ackUp(s *AppServerStream, i int) {
	s.Message("", []byte(`{"message_type":"ack","message_id":"u-`+strconv.Itoa(i)+`","to":"reg0"}`))
}

// inFlightIs reports whether s holds n upstream messages in flight.
func inFlightIs(s *AppServerStream, n int) func() bool {
	return func() bool { return s.inFlight() == n }
}

// TestUpstreamWindow: a connection holds at most UpstreamWindow unacked
// upstream messages; each ack lets exactly one more through, and a second
// connection takes what the first has no room for, in queue order.
func TestUpstreamWindow(t *testing.T) {
	r, hs, _ := streamRouter(t, 1, Config{UpstreamWindow: 2})
	queueUpstream(t, r, 0, 5)
	a, ac := openApp(t, r)
	waitSent(t, ac, "u-0", "u-1")
	for i := range 2 {
		wantPayload(t, ac, i, Delivery, upstreamJSONOf(i))
	}
	waitFor(t, "two in flight on a", inFlightIs(a, 2))
	ackUp(a, 0)
	waitSent(t, ac, "u-0", "u-1", "u-2")
	wantPayload(t, ac, 2, Delivery, upstreamJSONOf(2))
	b, bc := openApp(t, r)
	// a is full again: all of the rest goes to b, and then b is full too.
	waitSent(t, bc, "u-3", "u-4")
	waitFor(t, "two in flight on b", inFlightIs(b, 2))
	if got := ac.ids(); !slices.Equal(got, []string{"u-0", "u-1", "u-2"}) {
		t.Fatalf("a was sent %q after b took the rest", got)
	}
	waitFor(t, "u-0 deleted by its ack", func() bool { return slices.Equal(hs.upstreamIDs(t), []string{"u-1", "u-2", "u-3", "u-4"}) })
	a.Closed()
	b.Closed()
}

// TestUpstreamRewindOnClose: the upstream messages in flight on a
// connection that closes are sent again, in queue order, on the sender's
// other connection as its window allows, skipping the one still in flight
// there; what was acked is not sent again.
func TestUpstreamRewindOnClose(t *testing.T) {
	r, hs, _ := streamRouter(t, 1, Config{UpstreamWindow: 2})
	a, ac := openApp(t, r)
	b, bc := openApp(t, r)
	queueUpstream(t, r, 0, 4)
	// Round-robin: u-0 a, u-1 b, u-2 a, u-3 b.
	waitSent(t, ac, "u-0", "u-2")
	waitSent(t, bc, "u-1", "u-3")
	ackUp(b, 3)
	waitFor(t, "the ack of u-3 committed", func() bool { return slices.Equal(hs.upstreamIDs(t), []string{"u-0", "u-1", "u-2"}) })
	waitFor(t, "b has room for one", inFlightIs(b, 1))
	a.Closed()
	// The cursor goes back before u-0; u-1, in flight on b, is skipped.
	waitSent(t, bc, "u-1", "u-3", "u-0")
	wantPayload(t, bc, 2, Delivery, upstreamJSONOf(0))
	waitFor(t, "b full", inFlightIs(b, 2))
	ackUp(b, 1)
	waitSent(t, bc, "u-1", "u-3", "u-0", "u-2")
	ackUp(b, 0)
	ackUp(b, 2)
	waitFor(t, "the queue emptied by b's acks", func() bool { return len(hs.upstreamIDs(t)) == 0 })
	queueUpstream(t, r, 4, 5)
	waitSent(t, bc, "u-1", "u-3", "u-0", "u-2", "u-4")
	if got := ac.ids(); !slices.Equal(got, []string{"u-0", "u-2"}) {
		t.Fatalf("a was sent %q", got)
	}
	b.Closed()
}

// TestUpstreamRedeliverTimeout: an upstream message not acked within
// UpstreamRedeliver (by the injected clock) is sent again on its live
// connection; once acked it is gone and the next one flows.
func TestUpstreamRedeliverTimeout(t *testing.T) {
	r, hs, clk := streamRouter(t, 1, Config{UpstreamWindow: 1, UpstreamRedeliver: 40 * time.Millisecond})
	a, ac := openApp(t, r)
	queueUpstream(t, r, 0, 2)
	waitSent(t, ac, "u-0")
	clk.add(41 * time.Millisecond)
	waitSent(t, ac, "u-0", "u-0")
	wantPayload(t, ac, 1, Delivery, upstreamJSONOf(0))
	ackUp(a, 0)
	waitSent(t, ac, "u-0", "u-0", "u-1")
	if got := hs.upstreamIDs(t); !slices.Equal(got, []string{"u-1"}) {
		t.Fatalf("queue %q, want u-1 only", got)
	}
	a.Closed()
}

// TestUpstreamLateAckOfRedelivered: when an upstream message is taken back
// from a connection that did not ack it in time and sent on another, the
// first connection's late ack is ignored (acks are valid only on the
// connection that carries the message); the second's ack deletes it.
func TestUpstreamLateAckOfRedelivered(t *testing.T) {
	r, hs, clk := streamRouter(t, 1, Config{UpstreamWindow: 1, UpstreamRedeliver: 40 * time.Millisecond})
	a, ac := openApp(t, r)
	b, bc := openApp(t, r)
	queueUpstream(t, r, 0, 1)
	waitSent(t, ac, "u-0")
	clk.add(41 * time.Millisecond)
	waitSent(t, bc, "u-0") // round-robin: b is next
	waitFor(t, "u-0 taken back from a", inFlightIs(a, 0))
	ackUp(a, 0)
	if got := hs.upstreamIDs(t); !slices.Equal(got, []string{"u-0"}) {
		t.Fatalf("after a's late ack the queue is %q, want u-0 still", got)
	}
	ackUp(b, 0)
	waitFor(t, "b's ack committed", func() bool { return len(hs.upstreamIDs(t)) == 0 })
	a.Closed()
	b.Closed()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if hs.upAcks != 1 {
		t.Fatalf("%d AckUpstream calls, want only b's", hs.upAcks)
	}
	if ac.ids()[0] != "u-0" || len(ac.ids()) != 1 {
		t.Fatalf("a was sent %q", ac.ids())
	}
}

// TestUpstreamAckWhileRedelivering: an ack that is still committing when
// its message's redelivery time passes does not stop the redelivery (the
// message is still queued). Once the ack commits, the copy sent again needs
// no ack: whether the app server acks it (quietly: nothing is left to
// delete) or not (it acked the message already), the connection's window
// slot comes back and the next message goes out.
func TestUpstreamAckWhileRedelivering(t *testing.T) {
	for _, ackDuplicate := range []bool{true, false} {
		t.Run(fmt.Sprintf("duplicate acked %v", ackDuplicate), func(t *testing.T) {
			r, hs, clk := streamRouter(t, 1, Config{UpstreamWindow: 1, UpstreamRedeliver: 40 * time.Millisecond})
			a, ac := openApp(t, r)
			queueUpstream(t, r, 0, 1)
			waitSent(t, ac, "u-0")
			gate := make(chan struct{})
			hs.mu.Lock()
			hs.ackGate = gate
			hs.mu.Unlock()
			ackUp(a, 0) // taken from a; its commit waits at the gate
			clk.add(41 * time.Millisecond)
			waitSent(t, ac, "u-0", "u-0")
			hs.mu.Lock()
			hs.ackGate = nil
			hs.mu.Unlock()
			close(gate)
			waitFor(t, "the first ack committed", func() bool { return len(hs.upstreamIDs(t)) == 0 })
			if ackDuplicate {
				ackUp(a, 0)
			}
			waitFor(t, "a's window free", inFlightIs(a, 0))
			queueUpstream(t, r, 1, 2)
			waitSent(t, ac, "u-0", "u-0", "u-1")
			a.Closed()
			if err := r.Close(); err != nil {
				t.Fatal(err)
			}
			// The duplicate's ack finds nothing in flight (the commit of the
			// first dropped it) or finds the message gone: never a second delete.
			if hs.upAcks < 1 || hs.upAcks > 2 || hs.upAckErr[0] != nil || (hs.upAcks == 2 && hs.upAckErr[1] == nil) {
				t.Fatalf("AckUpstream calls %d with %v, want the first to delete and any second to find nothing", hs.upAcks, hs.upAckErr)
			}
		})
	}
}

// TestUpstreamAckDuringDispatch: an ack that commits while dispatch is
// reading the queue after a rewind must not make dispatch send the acked
// message again, though the read (older than the commit) still lists it.
func TestUpstreamAckDuringDispatch(t *testing.T) {
	r, hs, _ := streamRouter(t, 1, Config{UpstreamWindow: 2})
	a, ac := openApp(t, r)
	b, bc := openApp(t, r)
	queueUpstream(t, r, 0, 3)
	waitSent(t, ac, "u-0", "u-2")
	waitSent(t, bc, "u-1")
	h := a.hub
	hs.mu.Lock()
	hs.afterPendingUpstream = func(ups []store.Upstream) bool {
		if len(ups) < 2 || ups[0].MessageID != "u-0" || ups[1].MessageID != "u-1" {
			return false // not yet the read after the rewind
		}
		ackUp(b, 1)
		// Runs on the hub's goroutine: poll without t.Fatal.
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			h.mu.Lock()
			_, busy := h.inflight[ups[1].Seq]
			h.mu.Unlock()
			if !busy {
				return true
			}
		}
		t.Error("b's ack of u-1 never reached the hub")
		return true
	}
	hs.mu.Unlock()
	a.Closed() // rewinds before u-0: the next read lists u-0 and u-1
	waitSent(t, bc, "u-1", "u-0", "u-2")
	b.Closed()
}

// TestUpstreamAckNamesDevice: two devices may use one message_id; the ack's
// "to" says which of the two in flight it is for, and the other stays
// queued.
func TestUpstreamAckNamesDevice(t *testing.T) {
	r, hs, _ := streamRouter(t, 2, Config{})
	a, ac := openApp(t, r)
	for _, dev := range []string{"dev0", "dev1"} {
		c := &fakeConn{id: dev}
		d := r.OpenDevice(c)
		d.Message("", upstreamMsg(0))
		waitSent(t, c, "u-0")
		d.Closed()
	}
	waitSent(t, ac, "u-0", "u-0")
	a.Message("", []byte(`{"message_type":"ack","message_id":"u-0","to":"reg1"}`))
	waitFor(t, "reg1's u-0 deleted", func() bool { return len(hs.upstreamIDs(t)) == 1 })
	ups, err := hs.db.PendingUpstream("123", 0, 0, 0)
	if err != nil || upstreamFrom(ups[0].Payload) != "reg0" {
		t.Fatalf("left in the queue: %s (%v), want reg0's", ups[0].Payload, err)
	}
}

// TestUpstreamZeroTTL: a time_to_live 0 upstream message is queued (for
// ZeroTTLGrace) only while an app-server connection takes upstream; with
// none but a draining one it is acked and dropped: now or never.
func TestUpstreamZeroTTL(t *testing.T) {
	r, hs, _ := streamRouter(t, 1, Config{})
	a, ac := openApp(t, r)
	c := &fakeConn{id: "dev0"}
	d := r.OpenDevice(c)
	defer d.Closed()
	zero := func(i int) []byte {
		return []byte(`{"to":"123@gcm.googleapis.com","category":"com.example","message_id":"z-` + strconv.Itoa(i) + `","time_to_live":0}`)
	}
	d.Message("", zero(1))
	waitSent(t, ac, "z-1")
	wantPayload(t, ac, 0, Delivery, `{"category":"com.example","message_id":"z-1","from":"reg0","time_to_live":0}`)
	a.Message("", []byte(`{"message_type":"ack","message_id":"z-1","to":"reg0"}`))
	waitFor(t, "z-1 acked", func() bool { return len(hs.upstreamIDs(t)) == 0 })
	a.startDrain()
	d.Message("", zero(2))
	waitSent(t, c, "z-1", "z-2")
	wantPayload(t, c, 1, Answer, `{"message_id":"z-2","message_type":"ack"}`)
	if got := hs.upstreamIDs(t); len(got) != 0 {
		t.Fatalf("stored %q with only a draining app server", got)
	}
}
