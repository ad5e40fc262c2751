package e2e

import (
	"encoding/json"
	"fmt"
	"strconv"
	"testing"
	"time"

	ccsdevice "github.com/ccsd/ccsd/device"
)

// upstreamAnswers sends upstream messages from..to-1 of d's registration of
// app with the device package, each after the answer to the previous one,
// and returns the answers: "ack", or the nack's code.
func upstreamAnswers(t *testing.T, s *server, dev pkgDevice, app string, from, to int) []string {
	t.Helper()
	var out []string
	for i := from; i < to; i++ {
		err := dev.send(ccsdevice.Upstream{Sender: s.Sender, Category: app, MessageID: fmt.Sprintf("u-%d", i), Data: map[string]any{"i": strconv.Itoa(i)}})
		if err == nil {
			out = append(out, "ack")
			continue
		}
		out = append(out, nackCode(t, err))
	}
	return out
}

// drainUpstream reads and acks the upstream messages queued for app,
// up to an upstream marker dev sends for its registration of category, and
// returns their ids.
func drainUpstream(t *testing.T, s *server, dev upstreamDevice, app *client, category string) []string {
	t.Helper()
	var out []string
	for _, m := range upMarker(t, dev, app, s.Sender, category) {
		out = append(out, m.str("message_id"))
		app.ackUpstream(m.str("from"), m.str("message_id"))
	}
	return out
}

// TestDeviceUpstreamRate: a registration sending upstream past
// --upstream-rate per minute is nacked DEVICE_MESSAGE_RATE_EXCEEDED, and
// what it was refused never reaches the app server.
func TestDeviceUpstreamRate(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--upstream-rate", "5")
	d, _, _ := s.onlineDeviceClient(s.Sender, "com.example")
	dev := d.upstream(t)
	for i, a := range upstreamAnswers(t, s, dev, "com.example", 0, 8) {
		switch {
		case i < 5 && a != "ack":
			t.Fatalf("u-%d within the rate: %v", i, a)
		case i >= 5 && a != "DEVICE_MESSAGE_RATE_EXCEEDED":
			t.Fatalf("u-%d past the rate: %v", i, a)
		}
	}
	// Another app of the same device has its own budget.
	s.register(d, s.Sender, "com.example.other")
	if a := upstreamAnswers(t, s, dev, "com.example.other", 8, 9); a[0] != "ack" {
		t.Fatalf("another registration's first message: %v", a[0])
	}
	// The marker goes on the other app's registration: com.example is
	// past its rate.
	if ids := drainUpstream(t, s, dev, s.appServer(), "com.example.other"); len(ids) != 6 {
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
	d, _, _ := s.onlineDeviceClient(s.Sender, "com.example")
	dev := d.upstream(t)
	acked := 0
	for i, a := range upstreamAnswers(t, s, dev, "com.example", 0, 25) {
		switch {
		case a == "ack":
			acked++
			if i >= 10 {
				t.Fatalf("u-%d acked past the cap of 10", i)
			}
		case a != "SERVICE_UNAVAILABLE":
			t.Fatalf("u-%d: %v, want SERVICE_UNAVAILABLE", i, a)
		}
	}
	if acked != 10 {
		t.Fatalf("%d acked, want 10", acked)
	}
	app := s.appServer()
	var got []string
	for range 10 {
		m := app.expect(wait)
		got = append(got, m.str("message_id"))
		app.ackUpstream(m.str("from"), m.str("message_id"))
	}
	// Acked by the app server: room again. Poll, as the acks commit
	// asynchronously.
	i := 99
	checkFor(t, wait, 20*time.Millisecond, func() error {
		i++
		if a := upstreamAnswers(t, s, dev, "com.example", i, i+1); a[0] != "ack" {
			return fmt.Errorf("u-%d still refused after the app server acked the queue: %v", i, a[0])
		}
		return nil
	})
	// The queue is ordered: the app server gets the one accepted just now,
	// and had an 11th been stored past the cap, it would come before it.
	if next := drainUpstream(t, s, dev, app, "com.example"); len(next) != 1 || next[0] != fmt.Sprintf("u-%d", i) {
		t.Fatalf("after the 10 (%v) the app server got %v, want u-%d only", got, next, i)
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
	got := downMarker(t, app, dev, reg)
	if len(got) != 5 {
		t.Fatalf("the device got %s, want 5 messages", msgIDs(got))
	}
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
	checkFor(t, wait, 20*time.Millisecond, func() error {
		dev.close()
		dev = s.deviceConn(d)
		return errIDs("a session after the acks", downMarker(t, app, dev, reg), "")
	})
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
	// Nothing refused was queued: the device gets the 5 accepted and
	// nothing else before a marker (sent to another app of the device, as
	// reg1 is past its rate).
	marker := s.register(d1, s.Sender, "com.example.marker")
	dev := s.deviceConn(d1)
	if got := downMarker(t, app, dev, marker); msgIDs(got) != "r-0,r-1,r-2,r-3,r-4" {
		t.Fatalf("delivered %q, want r-0..r-4", msgIDs(got))
	}
}
