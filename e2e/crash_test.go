package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
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
	dev := newInbox(t)
	d := s.checkinWith(dev)
	reg := s.register(d, s.Sender, "com.example")
	app := s.appServer()
	const sent, chunk, killAfter = 400, 50, 150
	// A well-behaved app server: at most 100 unanswered messages, sent in
	// chunks of 50 as answers come back, so some are always in flight when
	// the kill lands.
	answered := sendInChunks(app, "c-", sent, chunk, func(int) string { return reg })
	acked := collectAcks(t, app, answered, killAfter)
	s.Kill()
	drainAcks(app, acked)
	s.restart()
	// The device comes online only now, as a device.Client (which finds
	// the restarted server through its run.json and acks what it gets).
	s.runDevice(d)
	missing := make(map[string]bool, len(acked))
	for id := range acked {
		missing[id] = true
	}
	delivered := 0
	for len(missing) > 0 {
		m := dev.expect(wait) // fails the test if an acked message never comes
		delete(missing, m.str("message_id"))
		delivered++
	}
	t.Logf("%d acked before SIGKILL, all delivered after restart (%d delivered so far)", len(acked), delivered)
}

// onlineDevice is a device session that acks every downstream message the
// moment it reads it, after recording its message_id in got.
func onlineDevice(c *client, mu *sync.Mutex, got map[string]int, delivered chan<- string) {
	for e := range c.in {
		text, ok := e.gcm()
		if !ok {
			continue
		}
		var v struct {
			MessageType string `json:"message_type"`
			MessageID   string `json:"message_id"`
		}
		if json.Unmarshal([]byte(text), &v) != nil || v.MessageType != "" {
			continue
		}
		mu.Lock()
		got[v.MessageID]++
		mu.Unlock()
		if delivered != nil {
			delivered <- v.MessageID
		}
		c.ack(v.MessageID)
	}
}

// TestCrashKeepsAckedMessagesOnline is the SIGKILL test with the devices
// online and acking, so that messages take the fast path (sent at once,
// their queue write held back, and never written when the ack comes
// first). The process is killed mid-stream; every message the app server
// got an ack for was delivered before the kill or is delivered after the
// restart: none is lost, and a message is delivered twice only as a
// duplicate of its own message_id (one in flight at the kill).
func TestCrashKeepsAckedMessagesOnline(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--downstream-rate", "0", "--max-queued-per-registration", "0")
	const ndev = 4
	devs := make([]device, ndev)
	regs := make([]string, ndev)
	var mu sync.Mutex
	before := map[string]int{}
	for i := range devs {
		devs[i] = s.checkin()
		regs[i] = s.register(devs[i], s.Sender, "com.example")
		go onlineDevice(s.deviceConn(devs[i]), &mu, before, nil)
	}
	app := s.appServer()
	const sent, chunk, killAfter = 3000, 50, 1200
	answered := sendInChunks(app, "o-", sent, chunk, func(j int) string { return regs[j%ndev] })
	acked := collectAcks(t, app, answered, killAfter)
	m := s.scrape()
	fast := m[`ccsd_downstream_fast_path_total{outcome="acked"}`]
	t.Logf("before the kill: fast path sent %.0f, acked before their write %.0f, written %.0f; delivered %.0f",
		m[`ccsd_downstream_fast_path_total{outcome="sent"}`], fast, m[`ccsd_downstream_fast_path_total{outcome="written"}`], m[`ccsd_downstream_delivered_total`])
	s.Kill()
	drainAcks(app, acked)
	if fast == 0 {
		t.Fatal("no message took the fast path before the kill: this test would prove nothing about it")
	}
	// The devices' readers end with their connections; what they recorded
	// is what was delivered before the kill.
	mu.Lock()
	missing := map[string]bool{}
	for id := range acked {
		if before[id] == 0 {
			missing[id] = true
		}
	}
	mu.Unlock()
	s.restart()
	after := map[string]int{}
	var amu sync.Mutex
	delivered := make(chan string, sent)
	for i := range devs {
		go onlineDevice(s.deviceConn(devs[i]), &amu, after, delivered)
	}
	deadline := time.After(wait)
	for len(missing) > 0 {
		select {
		case id := <-delivered:
			delete(missing, id)
		case <-deadline:
			t.Fatalf("%d messages acked to the app server were never delivered, e.g. %v", len(missing), firstKeys(missing, 5))
		}
	}
	mu.Lock()
	amu.Lock()
	twice := 0
	for id, n := range after {
		if before[id] > 0 || n > 1 {
			twice++
		}
	}
	nb, na := len(before), len(after)
	amu.Unlock()
	mu.Unlock()
	t.Logf("%d acked before SIGKILL (%.0f on the fast path with no queue write); all delivered (%d before the kill, %d after, %d of them again: in flight at the kill)",
		len(acked), fast, nb, na, twice)
}

// firstKeys returns up to n keys of m, for a failure message.
func firstKeys(m map[string]bool, n int) []string {
	var out []string
	for k := range m {
		if len(out) == n {
			break
		}
		out = append(out, k)
	}
	return out
}

// sendInChunks has app send sent messages, ids prefix+"J" and to(j) as
// message j's "to", the way a well-behaved app server does: chunks of
// chunk, the next one only once the answer count reported on the returned
// channel is within a chunk of it, so some are always in flight.
func sendInChunks(app *client, prefix string, sent, chunk int, to func(j int) string) chan<- int {
	answered := make(chan int, sent+1)
	go func() {
		for i := 0; i < sent; i += chunk {
			for n := range answered {
				if n >= i-chunk {
					break
				}
			}
			var b strings.Builder
			for j := i; j < i+chunk; j++ {
				fmt.Fprintf(&b, `<message><gcm xmlns="google:mobile:data">{"to":"%s","message_id":"%s%d","data":{"i":"%d"}}</gcm></message>`, to(j), prefix, j, j)
			}
			app.write(b.String())
		}
	}()
	answered <- 0
	return answered
}

// collectAcks reads app's answers until n messages are acked, reporting
// the count on answered; a nack fails the test (every message is within
// the window).
func collectAcks(t *testing.T, app *client, answered chan<- int, n int) map[string]bool {
	t.Helper()
	acked := map[string]bool{}
	for i := 1; len(acked) < n; i++ {
		m := app.expect(wait)
		if m.str("message_type") != "ack" {
			t.Fatalf("a message within the window was refused: %v", m.json)
		}
		acked[m.str("message_id")] = true
		answered <- i
	}
	return acked
}

// drainAcks adds to acked the acks app had already received when ccsd
// died: each was written after its commit, so they count too.
func drainAcks(app *client, acked map[string]bool) {
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
}
