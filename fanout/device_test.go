package fanout

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"
)

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
	if d, err = r.OpenDevice(c); err != nil {
		t.Fatal(err)
	}
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
