package fanout

import (
	"slices"
	"testing"
	"time"
)

func control(d *DeviceStream, typ, id string) {
	d.Message("", []byte(`{"message_type":"control","control_type":"`+typ+`","message_id":"`+id+`"}`))
}

// sentNow waits until d has nothing more on its way with n in flight, then
// fails unless c was sent exactly want.
func sentNow(t *testing.T, d *DeviceStream, c *fakeConn, n int, want ...string) {
	t.Helper()
	waitFor(t, "delivery idle", idle(d, n))
	if got := c.ids(); !slices.Equal(got, want) {
		t.Fatalf("sent %q, want %q", got, want)
	}
}

// TestDozeHoldsNormalSendsHigh: once its DOZE is acked, a session gets
// high-priority messages at once and no normal ones; AWAKE (acked) releases
// the held ones in arrival order.
func TestDozeHoldsNormalSendsHigh(t *testing.T) {
	r, _, _ := streamRouter(t, 1, Config{})
	d, c := onlineDevice(t, r)
	control(d, "DOZE", "z-1")
	waitSent(t, c, "z-1")
	queueJSON(t, r, prioMsg("n-1", `"priority":"normal",`), prioMsg("h-1", `"priority":"high",`), prioMsg("n-2", ""))
	waitSent(t, c, "z-1", "h-1")
	sentNow(t, d, c, 1, "z-1", "h-1")
	devAck(d, "h-1")
	control(d, "AWAKE", "z-2")
	waitSent(t, c, "z-1", "h-1", "z-2", "n-1", "n-2")
	for i, m := range c.messages() {
		if id := m["message_id"]; (id == "z-1" || id == "z-2") && (m["message_type"] != "ack" || c.types()[i] != Answer) {
			t.Fatalf("control answered %v", m)
		}
	}
	// Awake again: messages go as they come.
	queueJSON(t, r, prioMsg("n-3", ""))
	waitSent(t, c, "z-1", "h-1", "z-2", "n-1", "n-2", "n-3")
}

// TestDozeFastPath: a dozing session takes no normal message on the fast
// path (its write is not held back: the app server is answered once it is
// durable, with a fast-path delay of a minute) and sends no normal message;
// a high one reaches it.
func TestDozeFastPath(t *testing.T) {
	r, hs, _ := streamRouter(t, 1, Config{FastPathDelay: time.Minute})
	d, c := onlineDevice(t, r)
	control(d, "DOZE", "z-1")
	waitSent(t, c, "z-1")
	queueJSON(t, r, prioMsg("n-1", ""), prioMsg("h-1", `"priority":"high",`))
	waitSent(t, c, "z-1", "h-1")
	if got := queuedIDs(t, hs); !slices.Equal(got, []string{"n-1", "h-1"}) {
		t.Fatalf("queued %q, want both written at once", got)
	}
	if n := r.n.fastSent.Load(); n != 0 {
		t.Fatalf("%d messages took the fast path while dozing", n)
	}
	devAck(d, "h-1")
	control(d, "AWAKE", "z-2")
	waitSent(t, c, "z-1", "h-1", "z-2", "n-1")
	devAck(d, "n-1")
	waitFor(t, "caught up again", caughtUp(d))
}

// TestDozeMaxDelay: a session dozing for MaxDozeDelay gets what was held
// (a maintenance window), then holds again until the next window.
func TestDozeMaxDelay(t *testing.T) {
	const delay = 300 * time.Millisecond
	r, _, _ := streamRouter(t, 1, Config{MaxDozeDelay: delay})
	d, c := onlineDevice(t, r)
	start := time.Now()
	control(d, "DOZE", "z-1")
	waitSent(t, c, "z-1")
	queueJSON(t, r, prioMsg("n-1", ""), prioMsg("n-2", ""))
	sentNow(t, d, c, 0, "z-1")
	waitSent(t, c, "z-1", "n-1", "n-2")
	if e := time.Since(start); e < delay {
		t.Fatalf("released after %v, before the maximum delay %v", e, delay)
	}
	devAck(d, "n-1")
	devAck(d, "n-2")
	released := time.Now()
	queueJSON(t, r, prioMsg("n-3", ""))
	sentNow(t, d, c, 0, "z-1", "n-1", "n-2")
	waitSent(t, c, "z-1", "n-1", "n-2", "n-3")
	if e := time.Since(released); e < delay/2 {
		t.Fatalf("n-3 released %v after the first window: the session stopped holding", e)
	}
}

// TestDozeTTLWhileHeld: a held message's time_to_live runs: expired while
// the device dozes, it is never sent.
func TestDozeTTLWhileHeld(t *testing.T) {
	r, _, clk := streamRouter(t, 1, Config{})
	d, c := onlineDevice(t, r)
	control(d, "DOZE", "z-1")
	waitSent(t, c, "z-1")
	queueJSON(t, r, prioMsg("n-1", `"time_to_live":1,`), prioMsg("n-2", `"time_to_live":60,`))
	clk.add(2 * time.Second)
	control(d, "AWAKE", "z-2")
	waitSent(t, c, "z-1", "z-2", "n-2")
	sentNow(t, d, c, 1, "z-1", "z-2", "n-2")
}

// TestDozePerSession: the doze state belongs to the session: a new one
// starts awake.
func TestDozePerSession(t *testing.T) {
	r, _, _ := streamRouter(t, 1, Config{})
	d, c := onlineDevice(t, r)
	control(d, "DOZE", "z-1")
	waitSent(t, c, "z-1")
	queueJSON(t, r, prioMsg("n-1", ""))
	sentNow(t, d, c, 0, "z-1")
	d.Closed()
	c2 := &fakeConn{id: "dev0"}
	d2 := r.OpenDevice(c2)
	defer d2.Closed()
	waitSent(t, c2, "n-1")
}

// TestControlBadType: a control stanza with an unknown or missing
// control_type is nacked INVALID_JSON, one without a message_id bounced (as
// any device stanza without one), and neither changes anything.
func TestControlBadType(t *testing.T) {
	r, _, _ := streamRouter(t, 1, Config{})
	d, c := onlineDevice(t, r)
	control(d, "NAP", "c-1")
	d.Message("", []byte(`{"message_type":"control","message_id":"c-2"}`))
	d.Message("", []byte(`{"message_type":"control","control_type":7,"message_id":"c-3"}`))
	d.Message("", []byte(`{"message_type":"control","control_type":"DOZE"}`))
	waitFor(t, "three answers and a bounce", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.sent) == 3 && len(c.bounces) == 1
	})
	for _, m := range c.messages() {
		if m["message_type"] != "nack" || m["error"] != "INVALID_JSON" {
			t.Fatalf("answered %v, want a nack INVALID_JSON", m)
		}
	}
	queueJSON(t, r, prioMsg("n-1", ""))
	waitFor(t, "n-1 sent: still awake", func() bool { return slices.Contains(c.ids(), "n-1") })
}

// TestDelayWhileIdle: a delay_while_idle message is held while the device
// dozes whatever its priority, a maintenance window included, and sent once
// it is awake, before what the walk had not reached; its time_to_live runs
// meanwhile. Awake, it goes at once.
func TestDelayWhileIdle(t *testing.T) {
	r, _, clk := streamRouter(t, 1, Config{MaxDozeDelay: 500 * time.Millisecond})
	d, c := onlineDevice(t, r)
	control(d, "DOZE", "z-1")
	waitSent(t, c, "z-1")
	dwi := `"delay_while_idle":true,`
	queueJSON(t, r, prioMsg("d-0", dwi+`"time_to_live":1,`), prioMsg("d-1", dwi+`"priority":"high",`),
		prioMsg("n-1", ""), prioMsg("h-1", `"priority":"high",`))
	waitSent(t, c, "z-1", "h-1")
	devAck(d, "h-1")
	waitSent(t, c, "z-1", "h-1", "n-1") // the maintenance window: not d-0, d-1
	devAck(d, "n-1")
	queueJSON(t, r, prioMsg("d-2", dwi), prioMsg("n-2", ""))
	sentNow(t, d, c, 0, "z-1", "h-1", "n-1")
	clk.add(2 * time.Second) // d-0 expires
	control(d, "AWAKE", "z-2")
	waitSent(t, c, "z-1", "h-1", "n-1", "z-2", "d-1", "d-2", "n-2")
	for _, id := range []string{"d-1", "d-2", "n-2"} {
		devAck(d, id)
	}
	queueJSON(t, r, prioMsg("d-3", dwi))
	waitSent(t, c, "z-1", "h-1", "n-1", "z-2", "d-1", "d-2", "n-2", "d-3")
	sentNow(t, d, c, 1, "z-1", "h-1", "n-1", "z-2", "d-1", "d-2", "n-2", "d-3")
}

// TestAwakeReleasesBeyondWindow: more held messages than the window come
// in arrival order as the device acks, high ones that arrive meanwhile
// ahead of them.
func TestAwakeReleasesBeyondWindow(t *testing.T) {
	r, _, _ := streamRouter(t, 1, Config{DeviceWindow: 2})
	d, c := onlineDevice(t, r)
	control(d, "DOZE", "z-1")
	waitSent(t, c, "z-1")
	queueDown(t, r, 0, 5)
	sentNow(t, d, c, 0, "z-1")
	control(d, "AWAKE", "z-2")
	waitSent(t, c, "z-1", "z-2", "m-0", "m-1")
	queueJSON(t, r, prioMsg("h-1", `"priority":"high",`))
	want := []string{"z-1", "z-2", "m-0", "m-1"}
	for _, next := range [][]string{{"h-1", "m-2"}, {"m-3", "m-4"}} {
		for _, id := range want[len(want)-2:] {
			devAck(d, id)
		}
		want = append(want, next...)
		waitSent(t, c, want...)
	}
}
