package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// TestCrashKeepsAckedMessages: the app server pipelines messages; as soon as
// enough acks have arrived the process is killed with SIGKILL, mid-stream.
// After a restart on the same data directory, every message that was acked
// is delivered (invariant 1). Messages not yet acked may or may not be.
func TestCrashKeepsAckedMessages(t *testing.T) {
	t.Parallel()
	// 400 messages to one offline registration: past the rate and queue
	// bounds a phone would see, which this test is not about.
	s := startServer(t, "--downstream-rate", "0", "--max-queued-per-registration", "0")
	d := s.checkin()
	reg := s.register(d, s.Sender, "com.example")
	app := s.appServer()
	const sent, chunk, killAfter = 400, 50, 150
	// A well-behaved app server: at most 100 unanswered messages, sent in
	// chunks of 50 as answers come back, so some are always in flight when
	// the kill lands.
	answered := make(chan int, sent)
	go func() {
		for i := 0; i < sent; i += chunk {
			for n := range answered {
				if n >= i-chunk {
					break
				}
			}
			var b strings.Builder
			for j := i; j < i+chunk; j++ {
				fmt.Fprintf(&b, `<message><gcm xmlns="google:mobile:data">{"to":"%s","message_id":"c-%d","data":{"i":"%d"}}</gcm></message>`, reg, j, j)
			}
			app.write(b.String())
		}
	}()
	answered <- 0
	acked := map[string]bool{}
	n := 0
	for len(acked) < killAfter {
		m := app.expect(wait)
		if m.str("message_type") != "ack" {
			t.Fatalf("a message within the window was refused: %v", m.json)
		}
		acked[m.str("message_id")] = true
		n++
		answered <- n
	}
	s.Kill()
	// Acks already on their way when the process died count too: each was
	// written after its commit.
	for e := range app.in {
		if text, ok := e.gcm(); ok {
			var v struct {
				MessageType string `json:"message_type"`
				MessageID   string `json:"message_id"`
			}
			if json.Unmarshal([]byte(text), &v) == nil && v.MessageType == "ack" {
				acked[v.MessageID] = true
			}
		}
	}
	s.restart()
	dev := s.deviceConn(d)
	missing := make(map[string]bool, len(acked))
	for id := range acked {
		missing[id] = true
	}
	delivered := 0
	for len(missing) > 0 {
		m := dev.expect(wait) // fails the test if an acked message never comes
		delete(missing, m.str("message_id"))
		dev.ack(m.str("message_id"))
		delivered++
	}
	t.Logf("%d acked before SIGKILL, all delivered after restart (%d delivered so far)", len(acked), delivered)
}
