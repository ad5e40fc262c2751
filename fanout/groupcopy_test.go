package fanout

import "testing"

const groupMsg = `{"to":"APA91bTESTKEY","category":"com.example","message_id":"g-1","data":{"k":"v"}}`

// TestGroupCopy: with the sender's group copies on, a device's message to
// its group reaches the app server once, as an upstream message "to" the
// key from the sending registration, written in the same commit as the
// members' copies; the app server's ack removes it. Off (the default), the
// app server gets nothing.
func TestGroupCopy(t *testing.T) {
	r, hs, _ := streamRouter(t, 2, Config{})
	a, ac := openApp(t, r)
	c0, c1 := &fakeConn{id: "dev0"}, &fakeConn{id: "dev1"}
	d0 := r.OpenDevice(c0)
	defer d0.Closed()
	d1 := r.OpenDevice(c1)
	defer d1.Closed()

	d0.Message("", []byte(groupMsg))
	waitSent(t, c0, "g-1")
	waitSent(t, c1, "g-1")
	if n := hs.db.UpstreamUsage("123").Messages; n != 0 || len(ac.payloads()) != 0 {
		t.Fatalf("group copies off: %d queued upstream, app server sent %q", n, ac.payloads())
	}

	if _, err := hs.db.SetGroupCopies("123", true); err != nil {
		t.Fatal(err)
	}
	before := hs.db.Stats().Commits
	d0.Message("", []byte(`{"to":"APA91bTESTKEY","category":"com.example","message_id":"g-2","time_to_live":60,"data":{"k":"w"}}`))
	waitSent(t, c0, "g-1", "g-2")
	if commits := hs.db.Stats().Commits - before; commits != 1 {
		t.Fatalf("group message and copy took %d commits, want 1", commits)
	}
	waitSent(t, ac, "g-2")
	wantPayload(t, ac, 0, Delivery, `{"to":"APA91bTESTKEY","category":"com.example","data":{"k":"w"},"message_id":"g-2","from":"reg0","time_to_live":60}`)
	waitSent(t, c1, "g-1", "g-2")
	a.Message("", []byte(`{"message_type":"ack","message_id":"g-2","to":"reg0"}`))
	waitFor(t, "the copy acked", func() bool { return a.inFlight() == 0 && hs.db.UpstreamUsage("123").Messages == 0 })
}

// TestGroupCopyQueueFull: when the sender's upstream queue is at its cap,
// a group message with a copy due is refused as a whole
// (SERVICE_UNAVAILABLE): no member gets it, so the app server never misses
// one the devices got.
func TestGroupCopyQueueFull(t *testing.T) {
	r, hs, _ := streamRouter(t, 2, Config{MaxUpstreamQueued: 1})
	if _, err := hs.db.SetGroupCopies("123", true); err != nil {
		t.Fatal(err)
	}
	queueUpstream(t, r, 0, 1) // the queue is full, no app server reads it
	c0 := &fakeConn{id: "dev0"}
	d0 := r.OpenDevice(c0)
	defer d0.Closed()
	d0.Message("", []byte(groupMsg))
	waitSent(t, c0, "g-1")
	m := c0.messages()[0]
	if m["message_type"] != "nack" || m["error"] != "SERVICE_UNAVAILABLE" {
		t.Fatalf("device answer %v, want SERVICE_UNAVAILABLE", m)
	}
	if n, _ := hs.db.QueueLen("dev1"); n != 0 {
		t.Fatalf("%d queued for the other member", n)
	}
}
