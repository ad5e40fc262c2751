package fanout

import (
	"testing"
)

// prioMsg is a message to reg0 with the given id and extra fields.
func prioMsg(id, extra string) string {
	return `{"to":"reg0","message_id":"` + id + `",` + extra + `"data":{"k":"v"}}`
}

// queueJSON sends each payload for sender 123 and fails unless accepted.
func queueJSON(t *testing.T, r *Router, payloads ...string) {
	t.Helper()
	for _, p := range payloads {
		if res := sendJSON(r, "123", p); res.Nack != nil {
			t.Fatalf("%s: %v", p, res.Nack)
		}
	}
}

// TestHighOvertakesNormalBacklog: high-priority messages are delivered
// ahead of normal ones already queued for the device, on a live session
// whose window holds a backlog back, and on the next session of a device
// that was offline; each priority keeps its arrival order.
func TestHighOvertakesNormalBacklog(t *testing.T) {
	r, _, _ := streamRouter(t, 1, Config{DeviceWindow: 2})
	queueDown(t, r, 0, 5)
	c := &fakeConn{id: "dev0"}
	d := r.OpenDevice(c)
	waitSent(t, c, "m-0", "m-1")
	waitFor(t, "window full", idle(d, 2))
	queueJSON(t, r, prioMsg("h-1", `"priority":"high",`), prioMsg("h-2", `"priority":"high",`))
	devAck(d, "m-0")
	waitSent(t, c, "m-0", "m-1", "h-1")
	devAck(d, "m-1")
	devAck(d, "h-1")
	waitSent(t, c, "m-0", "m-1", "h-1", "h-2", "m-2")
	d.Closed()

	// Offline: the next session starts with the high ones.
	queueJSON(t, r, prioMsg("h-3", `"priority":"high",`), prioMsg("n-1", `"priority":"normal",`), prioMsg("h-4", `"priority":"high",`))
	c2 := &fakeConn{id: "dev0"}
	d2 := r.OpenDevice(c2)
	defer d2.Closed()
	// h-2 and m-2.. were not acked: they come again, the high ones first.
	want := []string{"h-2", "h-3"}
	waitSent(t, c2, want...)
	for _, next := range [][]string{{"h-4", "m-2"}, {"m-3", "m-4"}, {"n-1"}} {
		for _, id := range want[len(want)-2:] {
			devAck(d2, id)
		}
		want = append(want, next...)
		waitSent(t, c2, want...)
	}
}
