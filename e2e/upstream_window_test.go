package e2e

import (
	"fmt"
	"testing"
)

// TestDeviceUpstreamFullWindow: a device that keeps the whole pending
// window (100) of upstream messages in flight and sends the next one the
// moment an ack arrives is never refused: ccsd frees the slot before it
// sends the ack. (It used to ack first, so the next message could find the
// window still full and get SERVICE_UNAVAILABLE.)
func TestDeviceUpstreamFullWindow(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--upstream-rate", "0")
	d := s.checkin()
	s.register(d, s.Sender, "com.example")
	dev := s.deviceConn(d)
	const window, total = 100, 1500
	send := func(i int) {
		dev.send(fmt.Sprintf(`{"to":"%s@gcm.googleapis.com","category":"com.example","message_id":"w-%d","data":{"i":"%d"}}`, s.Sender, i, i))
	}
	next := 0
	for ; next < window; next++ {
		send(next)
	}
	for acked := 0; acked < total; acked++ {
		a := dev.expect(wait)
		if a.str("message_type") != "ack" {
			t.Fatalf("answer %d: %v, want an ack (the window must have room once a message is answered)", acked, a.json)
		}
		if next < total {
			send(next)
			next++
		}
	}
}
