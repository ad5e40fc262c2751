package fanout

import (
	"errors"
	"testing"
	"time"
)

// TestDrainConnOnDemand: DrainConn drains one connection only: it gets
// CONNECTION_DRAINING, its message already read is acked on it before it is
// closed (plainly), the next is nacked CONNECTION_DRAINING, while the
// sender's other connection and new connections carry on undrained.
func TestDrainConnOnDemand(t *testing.T) {
	r, hs, _ := streamRouter(t, 1, Config{})
	a, ac := openApp(t, r)
	b, bc := openApp(t, r)
	release := stallCommits(t, hs.db)
	a.Message("", downMsg(1)) // pending in the slow commit
	if err := r.DrainConn(a.id); err != nil {
		t.Fatalf("DrainConn: %v", err)
	}
	waitFor(t, "CONNECTION_DRAINING", func() bool { return len(ac.payloads()) == 1 })
	wantDraining(t, ac, 0)
	a.Message("", downMsg(2))
	waitFor(t, "the nack of m-2", func() bool { return len(ac.payloads()) == 2 })
	wantPayload(t, ac, 1, Answer, `{"from":"reg0","message_id":"m-2"`+drainingNack)
	if got := ac.closed(); len(got) != 0 {
		t.Fatalf("closed %v with m-1 unanswered", got)
	}
	release()
	waitFor(t, "a closed", func() bool { return len(ac.closed()) == 1 })
	ac.mu.Lock()
	if ac.closes[0] != Finished || ac.closedAfter != 3 || ac.raw[2] != ackOf(1) {
		t.Fatalf("closed %v after %q, want a plain close after the ack of m-1", ac.closes, ac.raw)
	}
	ac.mu.Unlock()
	a.Closed()

	b.Message("", downMsg(3))
	n, nc := openApp(t, r)
	n.Message("", downMsg(4))
	waitSent(t, bc, "m-3")
	wantPayload(t, bc, 0, Answer, ackOf(3))
	waitSent(t, nc, "m-4")
	wantPayload(t, nc, 0, Answer, ackOf(4))
	if len(bc.closed())+len(nc.closed()) != 0 || b.draining.Load() || n.draining.Load() {
		t.Fatal("other connections drained too")
	}
}

// TestDrainAppServers: every app-server connection open now is drained
// and counted; device sessions are not; a connection opened afterwards is
// not drained. DrainConn names unknown ids and device sessions as such.
func TestDrainAppServers(t *testing.T) {
	r, _, _ := streamRouter(t, 1, Config{})
	a, ac := openApp(t, r)
	b, bc := openApp(t, r)
	dc := &fakeConn{id: "dev0"}
	d := r.OpenDevice(dc)
	defer d.Closed()
	if n := r.DrainAppServers(); n != 2 {
		t.Fatalf("DrainAppServers = %d, want 2", n)
	}
	for _, c := range []*fakeConn{ac, bc} {
		waitFor(t, "close of a drained connection", func() bool { return len(c.closed()) == 1 })
		wantDraining(t, c, 0)
	}
	a.Closed()
	b.Closed()
	n, nc := openApp(t, r)
	n.Message("", downMsg(1))
	waitSent(t, nc, "m-1")
	wantPayload(t, nc, 0, Answer, ackOf(1))
	if len(dc.closed()) != 0 {
		t.Fatal("device session closed")
	}
	if err := r.DrainConn(dc.ID()); !errors.Is(err, ErrNotAppServer) {
		t.Fatalf("DrainConn(device) = %v", err)
	}
	if err := r.DrainConn("nope"); !errors.Is(err, ErrUnknownConn) {
		t.Fatalf("DrainConn(nope) = %v", err)
	}
}

// TestDrainWaitsForUpstreamAcks: a drained connection stays open while an
// upstream message in flight on it is unacked (the app server keeps acking
// on it, spec §7), and closes once it is acked; without the ack it closes
// after DrainGrace.
func TestDrainWaitsForUpstreamAcks(t *testing.T) {
	r, _, _ := streamRouter(t, 1, Config{DrainGrace: 300 * time.Millisecond})
	queueUpstream(t, r, 0, 2)
	a, ac := openApp(t, r)
	waitSent(t, ac, "u-0", "u-1")
	r.DrainConn(a.id)
	waitFor(t, "CONNECTION_DRAINING", func() bool { return len(ac.payloads()) == 3 })
	ackUp(a, 0)
	ackUp(a, 1)
	waitFor(t, "close after the acks", func() bool { return len(ac.closed()) == 1 })
	a.Closed()

	queueUpstream(t, r, 2, 3)
	b, bc := openApp(t, r)
	waitSent(t, bc, "u-2")
	start := time.Now()
	r.DrainConn(b.id)
	waitFor(t, "close after the grace", func() bool { return len(bc.closed()) == 1 })
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Fatalf("closed after %v with u-2 unacked, want the grace", d)
	}
	b.Closed()
}

// TestMaxConnectionAge: an app-server connection is drained once it is
// MaxConnectionAge old (±10%); a device session is not.
func TestMaxConnectionAge(t *testing.T) {
	r, _, _ := streamRouter(t, 1, Config{MaxConnectionAge: 100 * time.Millisecond})
	dc := &fakeConn{id: "dev0"}
	d := r.OpenDevice(dc)
	defer d.Closed()
	start := time.Now()
	a, ac := openApp(t, r)
	waitFor(t, "close at the age", func() bool { return len(ac.closed()) == 1 })
	if age := time.Since(start); age < 90*time.Millisecond {
		t.Fatalf("drained after %v, want about 100ms", age)
	}
	wantDraining(t, ac, 0)
	a.Closed()
	if len(dc.closed()) != 0 || len(dc.payloads()) != 0 {
		t.Fatal("device session drained")
	}
}

// TestSessions: the list names each live connection once with its kind,
// identity, remote address, open time and counts, oldest first, and forgets
// closed ones.
func TestSessions(t *testing.T) {
	r, _, clk := streamRouter(t, 1, Config{})
	queueUpstream(t, r, 0, 1)
	a, ac := openApp(t, r)
	waitSent(t, ac, "u-0")
	clk.add(time.Second)
	dc := &fakeConn{id: "dev0"}
	d := r.OpenDevice(dc)
	got := r.Sessions()
	if len(got) != 2 {
		t.Fatalf("Sessions = %+v", got)
	}
	app, dev := got[0], got[1]
	if app.ID != ac.ID() || app.Kind != KindApp || app.Identity != "123" || app.Remote != "127.0.0.1:1" || app.InFlight != 1 || app.Draining {
		t.Fatalf("app session %+v", app)
	}
	if dev.ID != dc.ID() || dev.Kind != KindDevice || dev.Identity != "dev0" || !dev.Since.After(app.Since) {
		t.Fatalf("device session %+v", dev)
	}
	d.Closed()
	a.Closed()
	if got := r.Sessions(); len(got) != 0 {
		t.Fatalf("after close: %+v", got)
	}
}
