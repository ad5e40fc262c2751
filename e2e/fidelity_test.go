package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	goxmpp "github.com/xmppo/go-xmpp"
)

// goxmppApp logs in to s's app-server port as its default sender with
// github.com/xmppo/go-xmpp, a client library this project did not write.
func goxmppApp(t *testing.T, s *server) *goxmpp.Client {
	t.Helper()
	c, err := goxmpp.Options{
		Host:      s.Info.XMPPAddr,
		User:      s.Sender + "@gcm.googleapis.com",
		Password:  s.APIKey,
		TLSConfig: s.tls.Clone(),
		Session:   true,
		Mechanism: "PLAIN",
	}.NewClient()
	if err != nil {
		t.Fatalf("go-xmpp app server login: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// sendGCM sends one CCS JSON message with go-xmpp.
func sendGCM(t *testing.T, c *goxmpp.Client, payload string) {
	t.Helper()
	if _, err := c.SendOrg(`<message id=""><gcm xmlns="google:mobile:data">` + payload + `</gcm></message>`); err != nil {
		t.Fatal(err)
	}
}

// TestCollapseKeyBound: six messages with six distinct collapse keys to an
// offline device, sent by a go-xmpp app server, are all acked; when the
// device connects exactly the four newest arrive, in order, and the two
// dropped ones never arrive, not even in a later session.
func TestCollapseKeyBound(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	d := s.checkin()
	reg := s.register(d, s.Sender, "com.example")
	app := goxmppApp(t, s)
	for i := 1; i <= 6; i++ {
		sendGCM(t, app, fmt.Sprintf(`{"to":"%s","message_id":"ck-%d","collapse_key":"key-%d","data":{"n":"%d"}}`, reg, i, i, i))
		if _, _, a := recvGCM(t, app); a["message_type"] != "ack" || a["message_id"] != fmt.Sprintf("ck-%d", i) {
			t.Fatalf("message %d answered %v", i, a)
		}
	}
	marker := func() string {
		id := newMarker()
		sendGCM(t, app, `{"to":"`+reg+`","message_id":"`+id+`"}`)
		if _, _, a := recvGCM(t, app); a["message_type"] != "ack" || a["message_id"] != id {
			t.Fatalf("marker answered %v", a)
		}
		return id
	}
	dev := s.deviceConn(d)
	got := untilMarker(t, dev, marker(), func(m msg) { dev.ack(m.str("message_id")) })
	if err := errIDs("the device", got, "ck-3,ck-4,ck-5,ck-6"); err != nil {
		t.Fatal(err)
	}
	for _, m := range got {
		dev.ack(m.str("message_id"))
	}
	dev.close()
	// The acks commit asynchronously: a session opened before they did may
	// see the four again, never the two dropped.
	checkFor(t, wait, 20*time.Millisecond, func() error {
		dev = s.deviceConn(d)
		defer dev.close()
		return errIDs("the next session", untilMarker(t, dev, marker(), func(m msg) { dev.ack(m.str("message_id")) }), "")
	})
}

// sendResult is /gcm/send's JSON answer, with its field names kept.
func sendResult(t *testing.T, s *server, body string) (fields []string, v struct {
	Success, Failure int
	Results          []map[string]string
}) {
	t.Helper()
	code, b := s.send(body)
	var raw map[string]json.RawMessage
	if code != 200 || json.Unmarshal(b, &raw) != nil || json.Unmarshal(b, &v) != nil {
		t.Fatalf("send %s: %d %s", body, code, b)
	}
	return slices.Sorted(maps.Keys(raw)), v
}

// TestDryRunHTTP: a dry_run send over legacy HTTP answers with the same
// JSON fields as a real send, a message_id in its result, and stores
// nothing: the device, connecting afterwards, gets nothing before a marker
// sent after it.
func TestDryRunHTTP(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	u := s.newUser(2, "com.example")
	realFields, real := sendResult(t, s, `{"to":"`+u.regs[0]+`","data":{"k":"real"}}`)
	dryFields, dry := sendResult(t, s, `{"to":"`+u.regs[1]+`","data":{"k":"dry"},"dry_run":true,"delivery_receipt_requested":true}`)
	if !slices.Equal(realFields, dryFields) {
		t.Fatalf("dry run fields %v, real send fields %v", dryFields, realFields)
	}
	for _, v := range []struct {
		Success, Failure int
		Results          []map[string]string
	}{real, dry} {
		if v.Success != 1 || v.Failure != 0 || len(v.Results) != 1 || v.Results[0]["message_id"] == "" || len(v.Results[0]) != 1 {
			t.Fatalf("result %+v: want one success with only a message_id", v)
		}
	}
	_, mk := sendResult(t, s, `{"to":"`+u.regs[1]+`","data":{"k":"marker"}}`)
	dev := s.deviceConn(u.devs[1])
	m := dev.expect(wait)
	if data, _ := m.json["data"].(map[string]any); data["k"] != "marker" || m.str("message_id") != mk.Results[0]["message_id"] {
		t.Fatalf("the device's first message is %v, want the marker: the dry run was stored", m.json)
	}
}

// TestHTTPReceiptsBounded: receipts of messages sent over legacy HTTP
// wait in the sender's upstream queue for its XMPP connections; once that
// queue is at --max-upstream-queued, an HTTP send asking for a receipt is
// answered Unavailable (stored nothing, retry later) while one without
// still goes, and no receipt already queued is lost: an app server that
// connects gets each, and once it has acked them receipts are taken again.
func TestHTTPReceiptsBounded(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--max-upstream-queued", "2")
	u := s.newUser(2, "com.example")
	online, offline := u.regs[0], u.regs[1] // offline's device never connects: its messages make no receipt
	dev := s.deviceConn(u.devs[0])
	var sent []string
	for i := 0; i < 2; i++ {
		_, v := sendResult(t, s, `{"to":"`+online+`","delivery_receipt_requested":true,"data":{"n":"`+fmt.Sprint(i)+`"}}`)
		if v.Success != 1 {
			t.Fatalf("send %d: %+v", i, v)
		}
		id := v.Results[0]["message_id"]
		if m := dev.expect(wait); m.str("message_id") != id {
			t.Fatalf("device got %v, want %s", m.json, id)
		}
		dev.ack(id)
		sent = append(sent, id)
	}
	withReceipt := `{"to":"` + offline + `","delivery_receipt_requested":true}`
	checkFor(t, wait, 20*time.Millisecond, func() error {
		if _, v := sendResult(t, s, withReceipt); v.Failure != 1 || v.Results[0]["error"] != "Unavailable" {
			return fmt.Errorf("with two receipts queued: %+v, want Unavailable", v)
		}
		return nil
	})
	if _, v := sendResult(t, s, `{"to":"`+online+`","delivery_receipt_requested":true,"data":{"n":"refused"}}`); v.Results[0]["error"] != "Unavailable" {
		t.Fatalf("a send asking for a receipt at the cap: %+v, want Unavailable", v)
	}
	_, plain := sendResult(t, s, `{"to":"`+online+`","data":{"n":"plain"}}`)
	if plain.Success != 1 {
		t.Fatalf("a send without receipt at the cap: %+v", plain)
	}
	if m := dev.expect(wait); m.str("message_id") != plain.Results[0]["message_id"] {
		t.Fatalf("device got %v, want the plain message (the refused one was stored)", m.json)
	}
	app := goxmppApp(t, s)
	var receipts []string
	for range sent {
		_, _, r := recvGCM(t, app)
		data, _ := r["data"].(map[string]any)
		if r["message_type"] != "receipt" {
			t.Fatalf("app server got %v, want a receipt", r)
		}
		receipts = append(receipts, fmt.Sprint(data["original_message_id"]))
		sendGCM(t, app, fmt.Sprintf(`{"to":"%v","message_id":"%v","message_type":"ack"}`, r["from"], r["message_id"]))
	}
	if !slices.Equal(receipts, sent) {
		t.Fatalf("receipts for %v, want %v", receipts, sent)
	}
	checkFor(t, wait, 20*time.Millisecond, func() error {
		if _, v := sendResult(t, s, withReceipt); v.Success != 1 {
			return errors.New("receipts still refused after the app server acked its queue")
		}
		return nil
	})
}
