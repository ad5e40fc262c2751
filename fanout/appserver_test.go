package fanout

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

func downMsg(i int) []byte {
	return []byte(`{"to":"reg0","message_id":"m-` + strconv.Itoa(i) + `","data":{"k":"v"}}`)
}

func ackOf(i int) string {
	return `{"from":"reg0","message_id":"m-` + strconv.Itoa(i) + `","message_type":"ack"}`
}

// TestAppServerMessage: each kind of stanza an app server sends gets CCS's
// answer, exactly.
func TestAppServerMessage(t *testing.T) {
	r, _, _ := streamRouter(t, 2, Config{})
	tests := []struct {
		name, in string
		want     string // "" = bounced as an unusable stanza
	}{
		{"downstream", `{"to":"reg0","message_id":"m-1","data":{"k":"v"}}`, ackOf(1)},
		{"to a group", `{"to":"APA91bTESTKEY","message_id":"g-1"}`, `{"from":"APA91bTESTKEY","message_id":"g-1","message_type":"ack","success":2,"failure":0}`},
		{"dry run", `{"to":"reg1","message_id":"d-1","dry_run":true}`, `{"from":"reg1","message_id":"d-1","message_type":"ack"}`},
		{"invalid", `{"to":"reg0","message_id":"m-2","time_to_live":-1}`, `{"from":"reg0","message_id":"m-2","message_type":"nack","error":"INVALID_JSON","error_description":"InvalidJson : INVALID_TTL : `},
		{"unknown registration", `{"to":"nobody","message_id":"m-3"}`, `{"from":"nobody","message_id":"m-3","message_type":"nack","error":"BAD_REGISTRATION"`},
		{"nack", `{"message_type":"nack","message_id":"u-1"}`, `{"message_id":"u-1","message_type":"nack","error":"BAD_ACK","error_description":"app servers acknowledge upstream messages with ack; nack is not accepted"}`},
		{"ack with bad to", `{"message_type":"ack","message_id":"u-1","to":5}`, `{"message_id":"u-1","message_type":"nack","error":"BAD_ACK","error_description":"ack field \"to\" must be a JSON string"}`},
		{"unknown type", `{"message_type":"bogus","message_id":"x-1"}`, `{"message_id":"x-1","message_type":"nack","error":"INVALID_JSON","error_description":"InvalidJson : INVALID_PARAMETERS : unknown message_type: bogus"}`},
		{"message_type not a string", `{"message_type":7,"message_id":"x-2"}`, `{"message_id":"x-2","message_type":"nack","error":"INVALID_JSON"`},
		{"no message_id", `{"to":"reg0"}`, ""},
		{"not JSON", `{"to":`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, c := openApp(t, r)
			defer s.Closed()
			s.Message("st-1", []byte(tt.in))
			if tt.want == "" {
				c.mu.Lock()
				defer c.mu.Unlock()
				if len(c.bounces) != 1 || c.bounces[0] == "" || len(c.raw) != 0 {
					t.Fatalf("bounces %q, sent %q: want one stanza error", c.bounces, c.raw)
				}
				return
			}
			waitFor(t, "the answer", func() bool { return len(c.payloads()) == 1 })
			got, typ := c.payloads()[0], c.types()[0]
			exact := strings.HasSuffix(tt.want, "}")
			if typ != Answer || exact && got != tt.want || !exact && !strings.HasPrefix(got, tt.want) {
				t.Fatalf("got kind %d %s\nwant %s", typ, got, tt.want)
			}
		})
	}
}

// TestAppServerDownstreamDelivered: an acked downstream message reaches the
// online device, typed "normal", with the fields of spec §4.1.
func TestAppServerDownstreamDelivered(t *testing.T) {
	r, _, clk := streamRouter(t, 1, Config{})
	dc := &fakeConn{id: "dev0"}
	d := r.OpenDevice(dc)
	defer d.Closed()
	s, c := openApp(t, r)
	s.Message("", downMsg(1))
	waitSent(t, c, "m-1")
	wantPayload(t, c, 0, Answer, ackOf(1))
	waitSent(t, dc, "m-1")
	wantPayload(t, dc, 0, Delivery, `{"message_id":"m-1","to":"reg0","from":"123","category":"com.example","time_to_live":2419200,"data":{"k":"v"},"sent":`+strconv.FormatInt(clk.now().UnixMilli(), 10)+`}`)
}

// TestAppServerMaxPending: past MaxPending messages read but not yet
// answered (the store is slow), the next is nacked SERVICE_UNAVAILABLE at
// once and not queued; the others are acked once durable, and each answer
// frees its slot.
func TestAppServerMaxPending(t *testing.T) {
	r, hs, _ := streamRouter(t, 1, Config{MaxPending: 2})
	s, c := openApp(t, r)
	release := stallCommits(t, hs.db)
	s.Message("", downMsg(0))
	s.Message("", downMsg(1))
	s.Message("", downMsg(2))
	waitSent(t, c, "m-2")
	wantPayload(t, c, 0, Answer, `{"from":"reg0","message_id":"m-2","message_type":"nack","error":"SERVICE_UNAVAILABLE","error_description":"Too many pending messages on this connection: wait for acks before sending more"}`)
	release()
	// Each ack is written by its commit's waiter: the two may swap.
	waitFor(t, "the acks of m-0 and m-1", func() bool { return len(c.payloads()) == 3 })
	if p := c.payloads()[1:]; !(p[0] == ackOf(0) && p[1] == ackOf(1) || p[0] == ackOf(1) && p[1] == ackOf(0)) {
		t.Fatalf("answers %q, want the acks of m-0 and m-1", p)
	}
	s.Message("", downMsg(3))
	waitFor(t, "the answer to m-3", func() bool { return len(c.payloads()) == 4 })
	wantPayload(t, c, 3, Answer, ackOf(3))
	if n, _ := hs.db.QueueLen("dev0"); n != 3 {
		t.Fatalf("%d queued for dev0, want m-0, m-1, m-3", n)
	}
}

// wantDraining fails unless stanza i on c is a CONNECTION_DRAINING control
// message (spec §7), untyped.
func wantDraining(t *testing.T, c *fakeConn, i int) {
	t.Helper()
	m, typ := c.messages()[i], c.types()[i]
	id, _ := m["message_id"].(string)
	if typ != Answer || len(m) != 3 || m["message_type"] != "control" || m["control_type"] != "CONNECTION_DRAINING" || !strings.HasPrefix(id, "drain-") {
		t.Fatalf("stanza %d: kind %d %v, want CONNECTION_DRAINING", i, typ, m)
	}
}

const drainingNack = `,"message_type":"nack","error":"CONNECTION_DRAINING","error_description":"Connection is draining: send this message on another connection"}`

// TestDrain: Drain tells every app-server connection CONNECTION_DRAINING,
// nacks what they send after it CONNECTION_DRAINING, answers every message
// read before it, and only then closes them, without a stream error. New
// connections and HTTP sends are refused too.
func TestDrain(t *testing.T) {
	r, hs, _ := streamRouter(t, 1, Config{})
	s, c := openApp(t, r)
	release := stallCommits(t, hs.db)
	s.Message("", downMsg(1)) // pending in the slow commit
	drained := make(chan error, 1)
	go func() { drained <- r.Drain(context.Background()) }()
	waitFor(t, "CONNECTION_DRAINING", func() bool { return len(c.payloads()) == 1 })
	wantDraining(t, c, 0)
	s.Message("", downMsg(2))
	waitFor(t, "the nack of m-2", func() bool { return len(c.payloads()) == 2 })
	wantPayload(t, c, 1, Answer, `{"from":"reg0","message_id":"m-2"`+drainingNack)
	if got := c.closed(); len(got) != 0 {
		t.Fatalf("closed %v with m-1 unanswered", got)
	}
	if res := sendJSON(r, "123", string(downMsg(3))); res.Nack == nil || res.Nack.Code != "SERVICE_UNAVAILABLE" {
		t.Fatalf("HTTP send while draining: %+v", res)
	}
	s2, c2 := openApp(t, r)
	waitFor(t, "CONNECTION_DRAINING on a new connection", func() bool { return len(c2.payloads()) == 1 })
	wantDraining(t, c2, 0)
	s2.Message("", downMsg(4))
	waitFor(t, "the nack of m-4", func() bool { return len(c2.payloads()) == 2 })
	wantPayload(t, c2, 1, Answer, `{"from":"reg0","message_id":"m-4"`+drainingNack)

	release()
	if err := <-drained; err != nil {
		t.Fatalf("Drain: %v", err)
	}
	wantPayload(t, c, 2, Answer, ackOf(1))
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.closes) != 1 || c.closes[0] != Finished || c.closedAfter != 3 {
		t.Fatalf("closed %v after %d stanzas, want one plain close after the ack of m-1", c.closes, c.closedAfter)
	}
	if n, _ := hs.db.QueueLen("dev0"); n != 1 {
		t.Fatalf("%d queued, want m-1 only", n)
	}
}

// TestDrainDeadline: when messages are still unanswered at ctx's deadline,
// Drain returns ctx's error and closes the connections anyway.
func TestDrainDeadline(t *testing.T) {
	r, hs, _ := streamRouter(t, 1, Config{})
	s, c := openApp(t, r)
	stallCommits(t, hs.db)
	s.Message("", downMsg(1))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := r.Drain(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Drain = %v, want the deadline", err)
	}
	if got := c.closed(); len(got) != 1 || got[0] != Finished {
		t.Fatalf("closes %v, want one", got)
	}
}

// TestDrainMovesUpstream: a draining connection is sent no more upstream
// messages; the sender's other connection takes them all.
func TestDrainMovesUpstream(t *testing.T) {
	r, _, _ := streamRouter(t, 1, Config{UpstreamWindow: 10})
	a, ac := openApp(t, r)
	_, bc := openApp(t, r)
	a.startDrain()
	wantDraining(t, ac, 0)
	queueUpstream(t, r, 0, 3)
	waitSent(t, bc, "u-0", "u-1", "u-2")
	// b holds all three in flight: nothing is left that a could be sent.
	if n := len(ac.payloads()); n != 1 {
		t.Fatalf("draining connection was sent %d stanzas", n)
	}
}

// TestCloseSender: a revoked sender's connections all end with
// not-authorized, and its other senders' do not.
func TestCloseSender(t *testing.T) {
	r, _, _ := streamRouter(t, 1, Config{})
	_, a := openApp(t, r)
	_, b := openApp(t, r)
	o := &fakeConn{id: "999"}
	so := r.OpenAppServer(o)
	defer so.Closed()
	if n := r.CloseSender("123"); n != 2 {
		t.Fatalf("CloseSender closed %d, want 2", n)
	}
	for _, c := range []*fakeConn{a, b} {
		if got := c.closed(); len(got) != 1 || got[0] != Revoked {
			t.Fatalf("closes %v", got)
		}
	}
	if got := o.closed(); len(got) != 0 || r.CloseSender("nobody") != 0 {
		t.Fatalf("other sender closed %v", got)
	}
}
