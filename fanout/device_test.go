package fanout

import (
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeConn is a Conn that records what fanout writes to it. onSend, if
// set, runs inside Send, as a peer that reacts the moment a stanza is
// queued for it would.
type fakeConn struct {
	id     string
	onSend func(payload []byte)

	mu   sync.Mutex
	sent []map[string]any
}

func (c *fakeConn) Identity() string { return c.id }

func (c *fakeConn) Send(payload []byte, _ Kind) error {
	var v map[string]any
	if err := json.Unmarshal(payload, &v); err != nil {
		return err
	}
	c.mu.Lock()
	c.sent = append(c.sent, v)
	c.mu.Unlock()
	if c.onSend != nil {
		c.onSend(payload)
	}
	return nil
}

func (c *fakeConn) Bounce(string, []byte, string) error { return nil }
func (c *fakeConn) Close(Reason)                        {}

// messages returns a copy of what was sent so far.
func (c *fakeConn) messages() []map[string]any {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]map[string]any(nil), c.sent...)
}

// waitFor polls until cond holds or fails the test after 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func upstreamMsg(i int) []byte {
	return []byte(`{"to":"123@gcm.googleapis.com","category":"com.example","message_id":"u-` + strconv.Itoa(i) + `","data":{"k":"v"}}`)
}

// TestDeviceUpstreamNextOnAck: a device that sends its next upstream
// message the moment it reads the ack of the previous one always finds a
// free slot, even with a window of one. The ack used to be queued before
// the slot was freed, so such a device was nacked SERVICE_UNAVAILABLE.
func TestDeviceUpstreamNextOnAck(t *testing.T) {
	db, _ := newTestStore(t, 1)
	r, err := New(Config{Store: db, MaxPending: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	const n = 50
	c := &fakeConn{id: "dev0"}
	var d *DeviceStream
	c.onSend = func(p []byte) {
		var v struct {
			MessageType string `json:"message_type"`
			MessageID   string `json:"message_id"`
		}
		if json.Unmarshal(p, &v) != nil || v.MessageType != "ack" {
			return
		}
		i, _ := strconv.Atoi(strings.TrimPrefix(v.MessageID, "u-"))
		if i < n {
			d.Message("", upstreamMsg(i+1))
		}
	}
	d = r.OpenDevice(c)
	d.Message("", upstreamMsg(1))
	waitFor(t, "every message answered, or a nack", func() bool {
		ms := c.messages()
		return len(ms) >= n || len(ms) > 0 && ms[len(ms)-1]["message_type"] != "ack"
	})
	for _, m := range c.messages() {
		if m["message_type"] != "ack" {
			t.Fatalf("device got %v, want only acks", m)
		}
	}
	ups, err := db.PendingUpstream("123", 0, 0, time.Now().UnixMilli())
	if err != nil || len(ups) != n {
		t.Fatalf("%d upstream messages queued (%v), want %d", len(ups), err, n)
	}
}
