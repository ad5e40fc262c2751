package e2e

import (
	"fmt"
	"testing"

	goxmpp "github.com/xmppo/go-xmpp"
)

// TestPriorityDozeGoXMPP: an app server on go-xmpp sends to a device over
// the real binary. A device that was offline behind a backlog of normal
// messages gets the high one first. A device whose DOZE ccsd acked gets a
// high message at once and holds normal and delay_while_idle (even high)
// ones until its AWAKE is acked; then they come in the order they were
// sent.
func TestPriorityDozeGoXMPP(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--max-queued-per-registration", "0") // the backlog below is over GCM's 100
	d := s.checkin()
	reg := s.register(d, s.Sender, "com.example")
	app, err := goxmpp.Options{
		Host: s.Info.XMPPAddr, User: s.Sender + "@gcm.googleapis.com", Password: s.APIKey,
		TLSConfig: s.tls.Clone(), Session: true, Mechanism: "PLAIN",
	}.NewClient()
	if err != nil {
		t.Fatalf("go-xmpp login: %v", err)
	}
	t.Cleanup(func() { app.Close() })
	down := func(id, fields string) {
		t.Helper()
		if _, err := app.SendOrg(`<message id="` + id + `"><gcm xmlns="google:mobile:data">{"to":"` + reg + `","message_id":"` + id + `",` + fields + `"data":{"k":"v"}}</gcm></message>`); err != nil {
			t.Fatal(err)
		}
		if _, _, a := recvGCM(t, app); a["message_type"] != "ack" || a["message_id"] != id {
			t.Fatalf("app server answer to %s: %v", id, a)
		}
	}

	// A backlog beyond the window (100): the high one goes first.
	const backlog = 110
	for i := range backlog {
		down(fmt.Sprintf("b-%d", i), "")
	}
	down("h-0", `"priority":"high",`)
	dev := s.deviceConn(d)
	if m := dev.expect(wait); m.str("message_id") != "h-0" {
		t.Fatalf("first after a backlog: %v, want the high h-0", m.json)
	}
	dev.ack("h-0")
	for i := range backlog {
		m := dev.expect(wait)
		if m.str("message_id") != fmt.Sprintf("b-%d", i) {
			t.Fatalf("backlog message %d: %v", i, m.json)
		}
		dev.ack(m.str("message_id"))
	}

	// Doze.
	control := func(typ, id string) {
		t.Helper()
		dev.send(`{"message_type":"control","control_type":"` + typ + `","message_id":"` + id + `"}`)
		if a := dev.expect(wait); a.str("message_type") != "ack" || a.str("message_id") != id {
			t.Fatalf("answer to %s: %v", typ, a.json)
		}
	}
	control("DOZE", "z-1")
	down("n-1", `"priority":"normal",`)
	down("d-1", `"delay_while_idle":true,"priority":"high",`)
	down("h-1", `"priority":"high",`)
	if m := dev.expect(wait); m.str("message_id") != "h-1" {
		t.Fatalf("dozing device got %v, want only h-1", m.json)
	}
	dev.ack("h-1")
	control("AWAKE", "z-2")
	for _, id := range []string{"n-1", "d-1"} {
		if m := dev.expect(wait); m.str("message_id") != id {
			t.Fatalf("after AWAKE: %v, want %s", m.json, id)
		}
		dev.ack(id)
	}
	// A bad control stanza is nacked INVALID_JSON.
	dev.send(`{"message_type":"control","control_type":"NAP","message_id":"z-3"}`)
	if a := dev.expect(wait); a.str("message_type") != "nack" || a.str("error") != "INVALID_JSON" || a.str("message_id") != "z-3" {
		t.Fatalf("answer to a bad control_type: %v", a.json)
	}
}
