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

// queueDown sends downMsg(from..to-1) for reg0 through the router and
// fails unless each was accepted.
func queueDown(t *testing.T, r *Router, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if res := sendJSON(r, "123", string(downMsg(i))); res.Nack != nil {
			t.Fatalf("m-%d: %v", i, res.Nack)
		}
	}
}

func devAck(d *DeviceStream, id string) {
	d.Message("", []byte(`{"message_type":"ack","message_id":"`+id+`"}`))
}

// idle reports whether d holds n messages in flight and has no delivery
// on its way: nothing more will be written until something wakes it.
func idle(d *DeviceStream, n int) func() bool {
	return func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		return d.count == n && !d.running
	}
}

// TestDeviceWindow: a session holds at most DeviceWindow unacked messages;
// each ack or nack lets the next one through, in queue order.
func TestDeviceWindow(t *testing.T) {
	r, hs, _ := streamRouter(t, 1, Config{DeviceWindow: 2})
	queueDown(t, r, 0, 5)
	c := &fakeConn{id: "dev0"}
	d := r.OpenDevice(c)
	defer d.Closed()
	waitSent(t, c, "m-0", "m-1")
	waitFor(t, "delivery stopped at the window", idle(d, 2))
	if got := c.ids(); len(got) != 2 {
		t.Fatalf("sent %q past a window of 2", got)
	}
	devAck(d, "m-0")
	waitSent(t, c, "m-0", "m-1", "m-2")
	d.Message("", []byte(`{"message_type":"nack","message_id":"m-1"}`)) // refused: stays queued, leaves the window
	waitSent(t, c, "m-0", "m-1", "m-2", "m-3")
	waitFor(t, "window full again", idle(d, 2))
	if n, _ := hs.db.QueueLen("dev0"); n != 4 {
		t.Fatalf("%d queued, want all but the acked m-0", n)
	}
	for i, typ := range c.types() {
		if typ != Delivery {
			t.Fatalf("stanza %d of kind %d", i, typ)
		}
	}
}

// TestDeviceNextSession: what a session left unacked is delivered again,
// byte for byte, to the next session; what it acked is not.
func TestDeviceNextSession(t *testing.T) {
	r, hs, _ := streamRouter(t, 1, Config{})
	queueDown(t, r, 0, 2)
	c := &fakeConn{id: "dev0"}
	d := r.OpenDevice(c)
	waitSent(t, c, "m-0", "m-1")
	devAck(d, "m-0")
	waitFor(t, "the ack committed", func() bool { n, _ := hs.db.QueueLen("dev0"); return n == 1 })
	d.Closed()
	c2 := &fakeConn{id: "dev0"}
	d2 := r.OpenDevice(c2)
	defer d2.Closed()
	waitSent(t, c2, "m-1")
	wantPayload(t, c2, 0, Delivery, c.payloads()[1])
}

// TestDeviceConflict: a second login of a device ends the first session
// with a conflict stream error; the old session's Closed leaves the new one
// registered, and it gets what is sent next.
func TestDeviceConflict(t *testing.T) {
	r, _, _ := streamRouter(t, 1, Config{})
	c1, c2 := &fakeConn{id: "dev0"}, &fakeConn{id: "dev0"}
	d1 := r.OpenDevice(c1)
	d2 := r.OpenDevice(c2)
	defer d2.Closed()
	if got := c1.closed(); len(got) != 1 || got[0] != Replaced {
		t.Fatalf("old session closes %v", got)
	}
	d1.Closed()
	if !r.deviceOnline("dev0") {
		t.Fatal("the old session's Closed unregistered the new one")
	}
	queueDown(t, r, 0, 1)
	waitSent(t, c2, "m-0")
	if len(c1.payloads()) != 0 || len(c2.closed()) != 0 {
		t.Fatalf("old session sent %q; new one closed %v", c1.payloads(), c2.closed())
	}
}

// TestDeviceReceipt: a device's ack of a message that asked for a receipt
// queues the receipt of spec §6 for the app server, which may ack it
// without its "dr2:" prefix (spec §15).
func TestDeviceReceipt(t *testing.T) {
	r, hs, clk := streamRouter(t, 1, Config{})
	a, ac := openApp(t, r)
	defer a.Closed()
	a.Message("", []byte(`{"to":"reg0","message_id":"m-1","delivery_receipt_requested":true}`))
	waitSent(t, ac, "m-1")
	c := &fakeConn{id: "dev0"}
	d := r.OpenDevice(c)
	defer d.Closed()
	waitSent(t, c, "m-1")
	sent := strconv.FormatInt(clk.now().UnixMilli(), 10)
	devAck(d, "m-1")
	waitSent(t, ac, "m-1", "dr2:m-1")
	wantPayload(t, ac, 1, Delivery, `{"message_type":"receipt","from":"gcm.googleapis.com","message_id":"dr2:m-1","category":"com.example","data":{"message_status":"MESSAGE_SENT_TO_DEVICE","original_message_id":"m-1","device_registration_id":"reg0","message_sent_timestamp":"`+sent+`"},"time_to_live":0}`)
	a.Message("", []byte(`{"message_type":"ack","message_id":"m-1","to":"gcm.googleapis.com"}`))
	waitFor(t, "the receipt acked", func() bool { return len(hs.upstreamIDs(t)) == 0 })
	if n, _ := hs.db.QueueLen("dev0"); n != 0 {
		t.Fatalf("%d still queued for the device", n)
	}
}

// TestDeviceToGroup: a device's message to its notification_key reaches
// the group's other members as a downstream message from the key, and the
// device is acked; a key it is not entitled to is nacked BAD_REGISTRATION.
func TestDeviceToGroup(t *testing.T) {
	r, _, clk := streamRouter(t, 2, Config{})
	c0, c1 := &fakeConn{id: "dev0"}, &fakeConn{id: "dev1"}
	d0 := r.OpenDevice(c0)
	defer d0.Closed()
	d1 := r.OpenDevice(c1)
	defer d1.Closed()
	d0.Message("", []byte(`{"to":"APA91bTESTKEY","category":"com.example","message_id":"g-1","data":{"k":"v"}}`))
	waitSent(t, c0, "g-1")
	wantPayload(t, c0, 0, Answer, `{"message_id":"g-1","message_type":"ack"}`)
	waitSent(t, c1, "g-1")
	wantPayload(t, c1, 0, Delivery, `{"message_id":"g-1","to":"reg1","from":"APA91bTESTKEY","category":"com.example","notification_key":"APA91bTESTKEY","time_to_live":2419200,"data":{"k":"v"},"sent":`+strconv.FormatInt(clk.now().UnixMilli(), 10)+`}`)
	for i, tc := range []struct{ in, desc string }{
		{`{"to":"APA91bNOKEY","category":"com.example","message_id":"g-2"}`, "Unknown notification_key: APA91bNOKEY"},
		{`{"to":"APA91bTESTKEY","category":"com.other","message_id":"g-3"}`, "The notification_key belongs to another app than com.other"},
	} {
		d0.Message("", []byte(tc.in))
		waitFor(t, "the nack", func() bool { return len(c0.payloads()) == 2+i })
		id := "g-" + strconv.Itoa(2+i)
		wantPayload(t, c0, 1+i, Answer, `{"message_id":"`+id+`","message_type":"nack","error":"BAD_REGISTRATION","error_description":"`+tc.desc+`"}`)
	}
}

// TestDeviceMessage: the device's other stanzas get their exact answers.
func TestDeviceMessage(t *testing.T) {
	r, hs, _ := streamRouter(t, 1, Config{})
	tests := []struct{ name, in, want string }{
		{"unknown type", `{"message_type":"bogus","message_id":"x-1"}`, `{"message_id":"x-1","message_type":"nack","error":"INVALID_JSON","error_description":"InvalidJson : INVALID_PARAMETERS : unknown message_type: bogus"}`},
		{"no to", `{"category":"com.example","message_id":"x-2"}`, `{"message_id":"x-2","message_type":"nack","error":"INVALID_JSON","error_description":"InvalidJson : MISSING_REGISTRATION : Missing Required Field: to"}`},
		{"no category", `{"to":"123@gcm.googleapis.com","message_id":"x-3"}`, `{"message_id":"x-3","message_type":"nack","error":"INVALID_JSON","error_description":"InvalidJson : INVALID_PARAMETERS : Missing Required Field: category"}`},
		{"other domain", `{"to":"123@example.com","category":"com.example","message_id":"x-4"}`, `{"message_id":"x-4","message_type":"nack","error":"BAD_REGISTRATION","error_description":"Invalid 'to' field: expected SENDER_ID@gcm.googleapis.com: 123@example.com"}`},
		{"unregistered app", `{"to":"123@fcm.googleapis.com","category":"com.other","message_id":"x-5"}`, `{"message_id":"x-5","message_type":"nack","error":"BAD_REGISTRATION","error_description":"This device has no registration of com.other for sender 123"}`},
		// time_to_live 0 with no app server online: deliver now or never.
		{"ttl 0 offline", `{"to":"123@gcm.googleapis.com","category":"com.example","message_id":"x-6","time_to_live":0}`, `{"message_id":"x-6","message_type":"ack"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &fakeConn{id: "dev0"}
			d := r.OpenDevice(c)
			defer d.Closed()
			d.Message("", []byte(tt.in))
			waitFor(t, "the answer", func() bool { return len(c.payloads()) == 1 })
			wantPayload(t, c, 0, Answer, tt.want)
		})
	}
	if got := hs.upstreamIDs(t); len(got) != 0 {
		t.Fatalf("stored %q", got)
	}
	c := &fakeConn{id: "dev0"}
	d := r.OpenDevice(c)
	defer d.Closed()
	d.Message("st-9", []byte(`{"message_type":`))
	if c.mu.Lock(); len(c.bounces) != 1 || len(c.raw) != 0 {
		t.Fatalf("unparsable stanza: bounces %q, sent %q", c.bounces, c.raw)
	}
	c.mu.Unlock()
}

// TestDeviceMaxPending: past MaxPending upstream messages not yet durable,
// the device is nacked SERVICE_UNAVAILABLE; the others are acked once the
// store catches up.
func TestDeviceMaxPending(t *testing.T) {
	r, hs, _ := streamRouter(t, 1, Config{MaxPending: 1})
	c := &fakeConn{id: "dev0"}
	d := r.OpenDevice(c)
	defer d.Closed()
	release := stallCommits(t, hs.db)
	d.Message("", upstreamMsg(1))
	d.Message("", upstreamMsg(2))
	waitSent(t, c, "u-2")
	wantPayload(t, c, 0, Answer, `{"message_id":"u-2","message_type":"nack","error":"SERVICE_UNAVAILABLE","error_description":"Too many pending messages on this connection: wait for acks before sending more"}`)
	release()
	waitSent(t, c, "u-2", "u-1")
	wantPayload(t, c, 1, Answer, `{"message_id":"u-1","message_type":"ack"}`)
	if got := hs.upstreamIDs(t); len(got) != 1 || got[0] != "u-1" {
		t.Fatalf("stored %q", got)
	}
}
