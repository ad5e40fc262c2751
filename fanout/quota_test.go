package fanout

import (
	"context"
	"encoding/json"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ccsd/ccsd/ccs"
	"github.com/ccsd/ccsd/store/bolt"
)

// fakeClock is a settable clock for Config.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// quotaRouter is a router over newTestStore's data with cfg's limits and a
// fake clock.
func quotaRouter(t *testing.T, n int, cfg Config) (*Router, *bolt.DB, string, *fakeClock) {
	t.Helper()
	db, key := newTestStore(t, n)
	clk := &fakeClock{t: time.Now()}
	cfg.Store, cfg.Now = db, clk.now
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r, db, key, clk
}

// answers sends upstream messages from..to-1 one by one on d, each after
// the previous was answered, and returns the answers.
func answers(t *testing.T, d *DeviceStream, c *fakeConn, from, to int) []map[string]any {
	t.Helper()
	start := len(c.messages())
	for i := from; i < to; i++ {
		d.Message("", upstreamMsg(i))
		want := start + i - from + 1
		waitFor(t, "answer to u-"+strconv.Itoa(i), func() bool { return len(c.messages()) >= want })
	}
	return c.messages()[start:]
}

func upstreamQueued(t *testing.T, db *bolt.DB) int {
	t.Helper()
	ups, err := db.PendingUpstream("123", 0, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	return len(ups)
}

// TestUpstreamRatePerRegistration: past UpstreamRate a device is nacked
// DEVICE_MESSAGE_RATE_EXCEEDED and nothing is stored; the bucket refills
// with time.
func TestUpstreamRatePerRegistration(t *testing.T) {
	r, db, _, clk := quotaRouter(t, 1, Config{UpstreamRate: 3})
	c := &fakeConn{id: "dev0"}
	d := r.OpenDevice(c)
	got := answers(t, d, c, 0, 5)
	for i, m := range got {
		want := "ack"
		if i >= 3 {
			want = "nack"
		}
		if m["message_type"] != want || (want == "nack" && m["error"] != string(ccs.CodeDeviceMessageRateExceeded)) {
			t.Fatalf("answer %d: %v, want %s", i, m, want)
		}
	}
	if n := upstreamQueued(t, db); n != 3 {
		t.Fatalf("%d stored, want 3", n)
	}
	clk.add(20 * time.Second) // one message per 20 s at 3/min
	if got := answers(t, d, c, 5, 7); got[0]["message_type"] != "ack" || got[1]["message_type"] != "nack" {
		t.Fatalf("after 20 s: %v", got)
	}
}

// TestUpstreamQueueCap: past MaxUpstreamQueued (or the bytes cap) queued
// for the sender, devices are nacked SERVICE_UNAVAILABLE and nothing more
// is stored; an app server's ack makes room again.
func TestUpstreamQueueCap(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"messages", Config{MaxUpstreamQueued: 4}},
		{"bytes", Config{MaxUpstreamQueuedBytes: 4 * 100}}, // each record is ~100 bytes
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, db, _, _ := quotaRouter(t, 1, tc.cfg)
			c := &fakeConn{id: "dev0"}
			d := r.OpenDevice(c)
			got := answers(t, d, c, 0, 8)
			acked := 0
			for _, m := range got {
				switch {
				case m["message_type"] == "ack":
					acked++
				case m["error"] != string(ccs.CodeServiceUnavailable):
					t.Fatalf("answer %v, want an ack or SERVICE_UNAVAILABLE", m)
				}
			}
			stored := upstreamQueued(t, db)
			if acked < 3 || acked == 8 || stored != acked {
				t.Fatalf("%d acked, %d stored of 8 over a cap of 4 or so", acked, stored)
			}
			if err := db.AckUpstream(context.Background(), "123", 1); err != nil {
				t.Fatal(err)
			}
			if got := answers(t, d, c, 8, 9); got[0]["message_type"] != "ack" {
				t.Fatalf("after the app server acked one: %v", got)
			}
		})
	}
}

// TestDownstreamRatePerRegistration: past DownstreamRate one registration's
// messages are nacked DEVICE_MESSAGE_RATE_EXCEEDED (HTTP:
// DeviceMessageRateExceeded); in a group send only that member fails.
func TestDownstreamRatePerRegistration(t *testing.T) {
	r, db, key, clk := quotaRouter(t, 3, Config{DownstreamRate: 2})
	send := func(to string, i int) SendResult {
		return sendJSON(r, "123", `{"to":"`+to+`","message_id":"m-`+strconv.Itoa(i)+`"}`)
	}
	for i := range 2 {
		if res := send("reg0", i); res.Nack != nil {
			t.Fatalf("message %d within the rate: %v", i, res.Nack)
		}
	}
	res := send("reg0", 2)
	if res.Nack == nil || res.Nack.Code != ccs.CodeDeviceMessageRateExceeded {
		t.Fatalf("third message: %+v", res)
	}
	if code, ok := res.Nack.HTTPError(); !ok || code != "DeviceMessageRateExceeded" {
		t.Fatalf("HTTP error %q %v", code, ok)
	}
	if n, _ := db.QueueLen("dev0"); n != 2 {
		t.Fatalf("dev0 has %d queued, want 2", n)
	}
	// The group: reg0 is spent, reg1 and reg2 are not.
	res = send(key, 3)
	if res.Nack != nil || res.Success != 2 || len(res.FailedRegistrationIDs) != 1 || res.FailedRegistrationIDs[0] != "reg0" {
		t.Fatalf("group send: %+v", res)
	}
	clk.add(30 * time.Second)
	if res := send("reg0", 4); res.Nack != nil {
		t.Fatalf("after 30 s at 2/min: %v", res.Nack)
	}
}

// TestDeletedMessages: past MaxQueuedPerRegistration messages without
// collapse_key for an offline registration, every one is acked, the queued
// ones are replaced by one deleted_messages message, and the device gets
// it, then what came after, when it connects.
func TestDeletedMessages(t *testing.T) {
	r, db, _, _ := quotaRouter(t, 1, Config{MaxQueuedPerRegistration: 3})
	send := func(body string) {
		t.Helper()
		if res := sendJSON(r, "123", body); res.Nack != nil {
			t.Fatalf("%s: %v", body, res.Nack)
		}
	}
	for i := range 4 {
		send(`{"to":"reg0","message_id":"m-` + strconv.Itoa(i) + `"}`)
	}
	send(`{"to":"reg0","message_id":"c-1","collapse_key":"inbox"}`)
	send(`{"to":"reg0","message_id":"m-4"}`)
	if n, _ := db.QueueLen("dev0"); n != 3 {
		t.Fatalf("%d queued, want deleted_messages, c-1 and m-4", n)
	}
	c := &fakeConn{id: "dev0"}
	r.OpenDevice(c)
	waitFor(t, "three messages", func() bool { return len(c.messages()) == 3 })
	got := c.messages()
	del := got[0]
	id, _ := del["message_id"].(string)
	if del["message_type"] != "deleted_messages" || id == "" || del["to"] != "reg0" || del["from"] != "123" ||
		del["category"] != "com.example" || del["sent"] == nil || len(del) != 6 {
		t.Fatalf("deleted_messages = %v", del)
	}
	if got[1]["message_id"] != "c-1" || got[2]["message_id"] != "m-4" {
		t.Fatalf("after it: %v, %v", got[1], got[2])
	}
}

// TestOnlineDeviceBound: a device with a live session may be behind by its
// window and a rate burst before the bound applies, so a burst to a device
// that acks costs it nothing; one that never acks is still bounded.
func TestOnlineDeviceBound(t *testing.T) {
	r, db, _, clk := quotaRouter(t, 1, Config{MaxQueuedPerRegistration: 3, DeviceWindow: 2, DownstreamRate: 5})
	c := &fakeConn{id: "dev0"} // acks nothing until the end
	d := r.OpenDevice(c)
	const bound = 3 + 2 + 5
	for i := range bound + 1 {
		if res := sendJSON(r, "123", `{"to":"reg0","message_id":"m-`+strconv.Itoa(i)+`"}`); res.Nack != nil {
			t.Fatal(res.Nack)
		}
		clk.add(12 * time.Second) // the rate's refill: it is not what is tested
		if n, _ := db.QueueLen("dev0"); i < bound && n != i+1 {
			t.Fatalf("online, message %d: %d queued, want %d (bound %d)", i, n, i+1, bound)
		}
	}
	p, _ := db.Pending("dev0", 0, 0, 0)
	if len(p) != 1 || !json.Valid(p[0].Payload) || string(p[0].Payload[:30]) != `{"message_type":"deleted_messa` {
		t.Fatalf("past the online bound: %d queued, first %s", len(p), p[0].Payload)
	}
	// Its ack of a discarded message in flight frees the window slot.
	d.Message("", []byte(`{"message_type":"ack","message_id":"m-0"}`))
	waitFor(t, "the deleted_messages written", func() bool {
		ms := c.messages()
		return len(ms) == 3 && ms[2]["message_type"] == "deleted_messages"
	})
}
