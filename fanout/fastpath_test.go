package fanout

import (
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/ccsd/ccsd/store"
)

// caughtUp reports whether d would take the next message on the fast path.
func caughtUp(d *DeviceStream) func() bool {
	return func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		return d.fastReady()
	}
}

// queuedIDs returns the message_ids queued for dev0, in queue order.
func queuedIDs(t *testing.T, hs *hookStore) []string {
	t.Helper()
	ms, err := hs.db.Pending("dev0", 0, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range ms {
		ids = append(ids, m.MessageID)
	}
	return ids
}

// onlineDevice opens dev0's session and waits until it is caught up.
func onlineDevice(t *testing.T, r *Router) (*DeviceStream, *fakeConn) {
	t.Helper()
	c := &fakeConn{id: "dev0"}
	d := r.OpenDevice(c)
	t.Cleanup(d.Closed)
	waitFor(t, "dev0 caught up", caughtUp(d))
	return d, c
}

// TestFastPathAckBeforeWrite: a message to an online, caught-up device is
// sent at once; the app server hears nothing until the device acks it (the
// write is held for a minute here), then gets its ack. Nothing was ever
// queued or deleted: only the dedup record was written, which a retry of
// the same message_id meets once the device is offline.
func TestFastPathAckBeforeWrite(t *testing.T) {
	r, hs, _ := streamRouter(t, 1, Config{FastPathDelay: time.Minute})
	a, ac := openApp(t, r)
	defer a.Closed()
	d, c := onlineDevice(t, r)
	a.Message("", downMsg(1))
	waitSent(t, c, "m-1")
	if got := ac.ids(); len(got) != 0 {
		t.Fatalf("app server answered %q before the message was durable or acked", got)
	}
	devAck(d, "m-1")
	waitSent(t, ac, "m-1")
	wantPayload(t, ac, 0, Answer, ackOf(1))
	if copies, acks := hs.writes(); copies != 0 || acks != 0 {
		t.Fatalf("%d copies queued and %d store acks, want none", copies, acks)
	}
	if s := r.Stats(); s.FastSent != 1 || s.FastAcked != 1 || s.FastWritten != 0 || s.DeviceAcks != 1 || s.DownstreamXMPP != 1 {
		t.Fatalf("stats %+v", s)
	}
	d.Closed()
	// The retry finds the dedup record (written after the device's ack,
	// submitted before the retry): acked, not queued.
	a.Message("", downMsg(1))
	waitSent(t, ac, "m-1", "m-1")
	if ids := queuedIDs(t, hs); len(ids) != 0 {
		t.Fatalf("a retry of m-1 was queued (%q): the dedup record was not written", ids)
	}
	// The first message ever queued for dev0 gets the first seq: the queue
	// never held m-1.
	a.Message("", downMsg(2))
	waitSent(t, ac, "m-1", "m-1", "m-2")
	ms, _ := hs.db.Pending("dev0", 0, 0, 0)
	if len(ms) != 1 || ms[0].MessageID != "m-2" || ms[0].Seq != 1 {
		t.Fatalf("queue %+v, want m-2 alone at seq 1", ms)
	}
}

// TestFastPathReceiptBeforeWrite: acked before its write, a message that
// asked for a receipt writes the receipt (with the dedup record), and the
// app server's ack comes only once it is durable, followed by the receipt.
func TestFastPathReceiptBeforeWrite(t *testing.T) {
	r, hs, _ := streamRouter(t, 1, Config{FastPathDelay: time.Minute})
	a, ac := openApp(t, r)
	defer a.Closed()
	durableAtAck := make(chan bool, 1)
	ac.onSend = func(p []byte) {
		if string(p) == ackOf(1) {
			durableAtAck <- slices.Contains(hs.upstreamIDs(t), "dr2:m-1")
		}
	}
	d, c := onlineDevice(t, r)
	a.Message("", []byte(`{"to":"reg0","message_id":"m-1","delivery_receipt_requested":true}`))
	waitSent(t, c, "m-1")
	devAck(d, "m-1")
	waitSent(t, ac, "m-1", "dr2:m-1")
	if !<-durableAtAck {
		t.Fatal("the app server was acked before the receipt was durable")
	}
	if copies, acks := hs.writes(); copies != 0 || acks != 0 {
		t.Fatalf("%d copies queued and %d store acks, want none", copies, acks)
	}
	if n, _ := hs.db.QueueLen("dev0"); n != 0 {
		t.Fatalf("%d queued", n)
	}
}

// TestFastPathAckAfterWrite: a device slower than the delay gets the
// message at once all the same; the write then happens as it would have,
// the app server is acked once it is durable, a later delivery read does
// not send it again, and the device's ack deletes it with its receipt.
func TestFastPathAckAfterWrite(t *testing.T) {
	r, hs, _ := streamRouter(t, 1, Config{FastPathDelay: time.Millisecond})
	a, ac := openApp(t, r)
	defer a.Closed()
	d, c := onlineDevice(t, r)
	a.Message("", []byte(`{"to":"reg0","message_id":"m-1","delivery_receipt_requested":true}`))
	waitSent(t, c, "m-1")
	waitSent(t, ac, "m-1") // durable
	if ids := queuedIDs(t, hs); !slices.Equal(ids, []string{"m-1"}) {
		t.Fatalf("queued %q, want m-1", ids)
	}
	d.Wake() // a delivery read finds m-1 queued after the cursor
	waitFor(t, "the read", idle(d, 1))
	if got := c.ids(); len(got) != 1 {
		t.Fatalf("device was sent %q: m-1 twice", got)
	}
	devAck(d, "m-1")
	waitSent(t, ac, "m-1", "dr2:m-1")
	waitFor(t, "m-1 deleted", func() bool { return len(queuedIDs(t, hs)) == 0 })
	if s := r.Stats(); s.FastSent != 1 || s.FastAcked != 0 || s.FastWritten != 1 || s.Receipts != 1 {
		t.Fatalf("stats %+v", s)
	}
	if _, acks := hs.writes(); acks != 1 {
		t.Fatalf("%d store acks, want 1", acks)
	}
	// The window slot came back: the next message goes the fast way.
	waitFor(t, "caught up again", caughtUp(d))
}

// TestFastPathKeepsArrivalOrder: messages held on the fast path are
// written before a slow write to the same device (a group message), so
// what is durable at any instant (a crash) is in arrival order, and the
// next session, which gets what was not acked, gets it in that order.
func TestFastPathKeepsArrivalOrder(t *testing.T) {
	r, hs, _ := streamRouter(t, 1, Config{FastPathDelay: time.Minute})
	a, ac := openApp(t, r)
	defer a.Closed()
	d, c := onlineDevice(t, r)
	a.Message("", downMsg(1))
	a.Message("", []byte(`{"to":"APA91bTESTKEY","message_id":"g-2"}`))
	waitSent(t, ac, "m-1", "g-2") // g-2 durable, and m-1 written first
	if ids := queuedIDs(t, hs); !slices.Equal(ids, []string{"m-1", "g-2"}) {
		t.Fatalf("durable queue %q, want m-1 then g-2", ids)
	}
	waitSent(t, c, "m-1", "g-2")
	waitFor(t, "caught up after g-2", caughtUp(d))
	a.Message("", downMsg(3))
	waitSent(t, c, "m-1", "g-2", "m-3")
	if ids := queuedIDs(t, hs); !slices.Equal(ids, []string{"m-1", "g-2"}) {
		t.Fatalf("durable queue %q, want m-3 still held", ids)
	}
	d.Closed() // the session ends: m-3 is written after them
	waitSent(t, ac, "m-1", "g-2", "m-3")
	c2 := &fakeConn{id: "dev0"}
	d2 := r.OpenDevice(c2)
	defer d2.Closed()
	waitSent(t, c2, "m-1", "g-2", "m-3")
}

// TestFastPathBacklogNotOvertaken: a device with an offline backlog
// larger than its window takes no fast path until it has caught up: a new
// message is queued (acked once durable, before the device has it) and
// delivered after the backlog.
func TestFastPathBacklogNotOvertaken(t *testing.T) {
	r, _, _ := streamRouter(t, 1, Config{DeviceWindow: 2, FastPathDelay: time.Minute})
	queueDown(t, r, 0, 5)
	a, ac := openApp(t, r)
	defer a.Closed()
	c := &fakeConn{id: "dev0"}
	d := r.OpenDevice(c)
	defer d.Closed()
	waitSent(t, c, "m-0", "m-1")
	a.Message("", downMsg(9))
	waitSent(t, ac, "m-9") // durable: it was queued, not held
	want := []string{"m-0", "m-1", "m-2", "m-3", "m-4", "m-9"}
	for i := range 4 { // each ack lets the next queued one through
		devAck(d, want[i])
		waitSent(t, c, want[:i+3]...)
	}
	if s := r.Stats(); s.FastSent != 0 {
		t.Fatalf("%d sent on the fast path while a backlog was queued", s.FastSent)
	}
}

// TestFastPathWaitsBehindDelivery: a message that arrives while a delivery
// read of the backlog is running, with window room, waits in memory and
// goes out right after the backlog, its write still held; or, once its
// write is due first, is queued behind the backlog (acked once durable).
func TestFastPathWaitsBehindDelivery(t *testing.T) {
	for _, tc := range []struct {
		name  string
		delay time.Duration
		fast  uint64
	}{{"sent from memory", time.Minute, 1}, {"queued when due", time.Millisecond, 0}} {
		t.Run(tc.name, func(t *testing.T) {
			r, hs, _ := streamRouter(t, 1, Config{FastPathDelay: tc.delay})
			queueDown(t, r, 0, 5)
			a, ac := openApp(t, r)
			defer a.Closed()
			gate := make(chan struct{})
			hs.mu.Lock()
			hs.pendingGate = gate
			hs.mu.Unlock()
			c := &fakeConn{id: "dev0"}
			d := r.OpenDevice(c)
			defer d.Closed()
			waitFor(t, "the login barrier, a read running", func() bool {
				d.mu.Lock()
				defer d.mu.Unlock()
				return d.synced && d.running
			})
			a.Message("", downMsg(9))
			if tc.fast == 0 {
				waitSent(t, ac, "m-9") // written behind the backlog
			}
			hs.mu.Lock()
			hs.pendingGate = nil
			hs.mu.Unlock()
			close(gate)
			waitSent(t, c, "m-0", "m-1", "m-2", "m-3", "m-4", "m-9")
			if tc.fast == 1 {
				if got := ac.ids(); len(got) != 0 {
					t.Fatalf("app server answered %q before m-9 was durable or acked", got)
				}
				devAck(d, "m-9")
				waitSent(t, ac, "m-9")
			}
			if s := r.Stats(); s.FastSent != tc.fast {
				t.Fatalf("%d sent on the fast path, want %d", s.FastSent, tc.fast)
			}
		})
	}
}

// TestFastPathNewSessionGetsHeld: a newer login of the device takes over
// while messages are held: they are written at once and the new session
// gets them, in order, before anything newer.
func TestFastPathNewSessionGetsHeld(t *testing.T) {
	r, hs, _ := streamRouter(t, 1, Config{FastPathDelay: time.Minute})
	a, ac := openApp(t, r)
	defer a.Closed()
	d, c := onlineDevice(t, r)
	a.Message("", downMsg(1))
	a.Message("", downMsg(2))
	waitSent(t, c, "m-1", "m-2")
	c2 := &fakeConn{id: "dev0"}
	d2 := r.OpenDevice(c2) // evicts d
	defer d2.Closed()
	waitSent(t, ac, "m-1", "m-2")
	waitSent(t, c2, "m-1", "m-2")
	devAck(d, "m-1") // too late: d is evicted, nothing to delete here
	devAck(d2, "m-1")
	devAck(d2, "m-2")
	waitFor(t, "both deleted", func() bool { return len(queuedIDs(t, hs)) == 0 })
	d.Closed()
	waitFor(t, "caught up", caughtUp(d2))
	a.Message("", downMsg(3))
	waitSent(t, c2, "m-1", "m-2", "m-3")
}

// TestFastPathSlowDeviceGoesSlow: a device whose acks take longer than
// the delay on average takes the queue (its app server would otherwise
// wait the delay for every ack), and is back on the fast path once its
// acks come fast again.
func TestFastPathSlowDeviceGoesSlow(t *testing.T) {
	r, hs, clk := streamRouter(t, 1, Config{FastPathDelay: 20 * time.Millisecond})
	a, ac := openApp(t, r)
	defer a.Closed()
	d, c := onlineDevice(t, r)
	var ids []string
	send := func(i int, rtt time.Duration) {
		t.Helper()
		a.Message("", downMsg(i))
		ids = append(ids, "m-"+strconv.Itoa(i))
		waitSent(t, c, ids...)
		clk.add(rtt)
		devAck(d, ids[len(ids)-1])
		waitSent(t, ac, ids...)
		waitFor(t, "idle", idle(d, 0))
	}
	send(0, 400*time.Millisecond) // on the fast path; its ack takes 400 ms
	if s := r.Stats(); s.FastSent != 1 {
		t.Fatalf("%d sent on the fast path, want m-0", s.FastSent)
	}
	copies, _ := hs.writes()
	send(1, 0)
	if s := r.Stats(); s.FastSent != 1 {
		t.Fatalf("%d sent on the fast path, want m-1 queued: the device acks slower than the delay", s.FastSent)
	}
	if now, _ := hs.writes(); now != copies+1 {
		t.Fatalf("%d copies queued for m-1, want 1", now-copies)
	}
	for i := 2; r.Stats().FastSent == 1; i++ { // quick acks bring the average down
		if i > 10 {
			t.Fatal("the device acks at once and still takes no fast path")
		}
		send(i, 0)
	}
}

// TestFastPathOff: with a negative delay every message is queued before it
// is sent, as before the fast path.
func TestFastPathOff(t *testing.T) {
	r, hs, _ := streamRouter(t, 1, Config{FastPathDelay: -1})
	a, ac := openApp(t, r)
	defer a.Closed()
	c := &fakeConn{id: "dev0"}
	d := r.OpenDevice(c)
	defer d.Closed()
	a.Message("", downMsg(1))
	waitSent(t, ac, "m-1")
	waitSent(t, c, "m-1")
	devAck(d, "m-1")
	waitFor(t, "m-1 deleted", func() bool { return len(queuedIDs(t, hs)) == 0 })
	if copies, acks := hs.writes(); copies != 1 || acks != 1 || r.Stats().FastSent != 0 {
		t.Fatalf("%d copies, %d acks, %d fast: want the queue write and the delete", copies, acks, r.Stats().FastSent)
	}
}

var _ store.Write = (*gatedWrite)(nil)
