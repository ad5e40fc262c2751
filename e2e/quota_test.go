package e2e

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

// upstreamAnswers sends upstream messages from..to-1 of d's registration of
// app, each after the answer to the previous one, and returns the answers.
func upstreamAnswers(t *testing.T, s *server, dev *client, app string, from, to int) []msg {
	t.Helper()
	var out []msg
	for i := from; i < to; i++ {
		dev.send(fmt.Sprintf(`{"to":"%s@gcm.googleapis.com","category":"%s","message_id":"u-%d","data":{"i":"%d"}}`, s.Sender, app, i, i))
		a := dev.expect(wait)
		if a.str("message_id") != fmt.Sprintf("u-%d", i) {
			t.Fatalf("answer to u-%d: %v", i, a.json)
		}
		out = append(out, a)
	}
	return out
}

// drainUpstream reads upstream messages on app until none comes for
// quiet, acking each, and returns their message ids.
func drainUpstream(t *testing.T, app *client, quiet time.Duration) []string {
	t.Helper()
	var ids []string
	for {
		select {
		case e, ok := <-app.in:
			if !ok {
				t.Fatal("app server stream closed")
			}
			text, _ := e.gcm()
			var v struct {
				From      string `json:"from"`
				MessageID string `json:"message_id"`
			}
			if err := json.Unmarshal([]byte(text), &v); err != nil {
				t.Fatalf("app server got %s", e)
			}
			ids = append(ids, v.MessageID)
			app.ackUpstream(v.From, v.MessageID)
		case <-time.After(quiet):
			return ids
		}
	}
}

// TestDeviceUpstreamRate: a registration sending upstream past
// --upstream-rate per minute is nacked DEVICE_MESSAGE_RATE_EXCEEDED, and
// what it was refused never reaches the app server.
func TestDeviceUpstreamRate(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--upstream-rate", "5")
	d := s.checkin()
	s.register(d, s.Sender, "com.example")
	dev := s.deviceConn(d)
	for i, a := range upstreamAnswers(t, s, dev, "com.example", 0, 8) {
		switch {
		case i < 5 && a.str("message_type") != "ack":
			t.Fatalf("u-%d within the rate: %v", i, a.json)
		case i >= 5 && (a.str("message_type") != "nack" || a.str("error") != "DEVICE_MESSAGE_RATE_EXCEEDED"):
			t.Fatalf("u-%d past the rate: %v", i, a.json)
		}
	}
	// Another app of the same device has its own budget.
	s.register(d, s.Sender, "com.example.other")
	if a := upstreamAnswers(t, s, dev, "com.example.other", 8, 9); a[0].str("message_type") != "ack" {
		t.Fatalf("another registration's first message: %v", a[0].json)
	}
	if ids := drainUpstream(t, s.appServer(), time.Second); len(ids) != 6 {
		t.Fatalf("the app server got %v, want the 6 acked messages", ids)
	}
}

// TestUpstreamQueueCap: once a sender's upstream queue holds
// --max-upstream-queued messages, devices are nacked SERVICE_UNAVAILABLE
// and nothing more is stored: the app server, connecting later, receives
// exactly the messages acked. Once it has acked them, devices may send
// again.
func TestUpstreamQueueCap(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--max-upstream-queued", "10")
	d := s.checkin()
	s.register(d, s.Sender, "com.example")
	dev := s.deviceConn(d)
	acked := 0
	for i, a := range upstreamAnswers(t, s, dev, "com.example", 0, 25) {
		switch {
		case a.str("message_type") == "ack":
			acked++
			if i >= 10 {
				t.Fatalf("u-%d acked past the cap of 10", i)
			}
		case a.str("error") != "SERVICE_UNAVAILABLE":
			t.Fatalf("u-%d: %v, want SERVICE_UNAVAILABLE", i, a.json)
		}
	}
	if acked != 10 {
		t.Fatalf("%d acked, want 10", acked)
	}
	app := s.appServer()
	if ids := drainUpstream(t, app, time.Second); len(ids) != 10 {
		t.Fatalf("the app server got %d messages (%v), want the 10 acked", len(ids), ids)
	}
	// Acked by the app server: room again. Poll, as the acks commit
	// asynchronously.
	deadline := time.Now().Add(wait)
	for i := 100; ; i++ {
		if a := upstreamAnswers(t, s, dev, "com.example", i, i+1); a[0].str("message_type") == "ack" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("still refused after the app server acked the queue")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDeletedMessages: 101 messages without collapse_key to an offline
// registration (GCM's bound, ccsd's default) are all acked, but the device
// then receives exactly one deleted_messages in their place, followed by
// what was sent after the discard and by collapsible messages, which are
// kept; it acks deleted_messages like any message.
func TestDeletedMessages(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	d := s.checkin()
	reg := s.register(d, s.Sender, "com.example")
	app := s.appServer()
	sendAcked := func(body string) {
		t.Helper()
		app.send(body)
		if a := app.expect(wait); a.str("message_type") != "ack" {
			t.Fatalf("%s: %v", body, a.json)
		}
	}
	sendAcked(fmt.Sprintf(`{"to":"%s","message_id":"c-1","collapse_key":"inbox"}`, reg))
	for i := 0; i < 101; i++ {
		sendAcked(fmt.Sprintf(`{"to":"%s","message_id":"m-%d"}`, reg, i))
	}
	for i := 101; i < 104; i++ {
		sendAcked(fmt.Sprintf(`{"to":"%s","message_id":"m-%d"}`, reg, i))
	}
	dev := s.deviceConn(d)
	var got []msg
	for len(got) < 5 {
		got = append(got, dev.expect(wait))
	}
	dev.expectNone(500 * time.Millisecond)
	if got[0].str("message_id") != "c-1" {
		t.Fatalf("first: %v, want the collapsible c-1", got[0].json)
	}
	del := got[1]
	if del.typ != "normal" || del.str("message_type") != "deleted_messages" || del.str("message_id") == "" ||
		del.str("to") != reg || del.str("from") != s.Sender || del.str("category") != "com.example" {
		t.Fatalf("deleted_messages: type=%q %v", del.typ, del.json)
	}
	for i, m := range got[2:] {
		if want := fmt.Sprintf("m-%d", 101+i); m.str("message_id") != want {
			t.Fatalf("after deleted_messages: %v, want %s", m.json, want)
		}
	}
	for _, m := range got {
		dev.ack(m.str("message_id"))
	}
	// Acked: gone, like any message. The acks commit asynchronously, so a
	// session opened at once may get some again: retry until one gets
	// nothing.
	deadline := time.Now().Add(wait)
	for {
		dev.close()
		dev = s.deviceConn(d)
		if quiet(dev, 500*time.Millisecond) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("messages still delivered after their acks")
		}
	}
}

// quiet reports whether nothing arrives on c for d.
func quiet(c *client, d time.Duration) bool {
	select {
	case <-c.in:
		return false
	case <-time.After(d):
		return true
	}
}

// TestDownstreamRate: past --downstream-rate messages a minute to one
// registration, the app server is nacked DEVICE_MESSAGE_RATE_EXCEEDED over
// XMPP and gets the result error DeviceMessageRateExceeded over HTTP;
// another registration is not affected.
func TestDownstreamRate(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--downstream-rate", "5")
	d1, d2 := s.checkin(), s.checkin()
	reg1, reg2 := s.register(d1, s.Sender, "com.example"), s.register(d2, s.Sender, "com.example")
	app := s.appServer()
	for i := 0; i < 7; i++ {
		app.send(fmt.Sprintf(`{"to":"%s","message_id":"r-%d"}`, reg1, i))
		a := app.expect(wait)
		switch {
		case i < 5 && a.str("message_type") != "ack":
			t.Fatalf("r-%d within the rate: %v", i, a.json)
		case i >= 5 && (a.str("message_type") != "nack" || a.str("error") != "DEVICE_MESSAGE_RATE_EXCEEDED" || a.str("from") != reg1):
			t.Fatalf("r-%d past the rate: %v", i, a.json)
		}
	}
	code, body := s.send(fmt.Sprintf(`{"registration_ids":["%s","%s"],"data":{"k":"v"}}`, reg1, reg2))
	var res struct {
		Success, Failure int
		Results          []struct {
			MessageID string `json:"message_id"`
			Error     string `json:"error"`
		}
	}
	if code != 200 || json.Unmarshal(body, &res) != nil || len(res.Results) != 2 {
		t.Fatalf("/gcm/send: %d %s", code, body)
	}
	if res.Results[0].Error != "DeviceMessageRateExceeded" || res.Results[1].MessageID == "" || res.Success != 1 || res.Failure != 1 {
		t.Fatalf("/gcm/send results: %s", body)
	}
	// Nothing refused was queued: the device gets the 5 accepted, then
	// reg2's device its one.
	dev := s.deviceConn(d1)
	for i := 0; i < 5; i++ {
		if m := dev.expect(wait); m.str("message_id") != fmt.Sprintf("r-%d", i) {
			t.Fatalf("delivered %v, want r-%d", m.json, i)
		}
	}
	dev.expectNone(500 * time.Millisecond)
}
