package e2e

import (
	"encoding/json"
	"os/exec"
	"testing"

	goxmpp "github.com/xmppo/go-xmpp"
)

// TestGroupCopies: a device's message to its group reaches the app server
// (go-xmpp) only when the sender turned group copies on ("ccsd sender
// set --group-copies=true" against the running server): then exactly once,
// as an upstream message "to" the notification_key from the sending
// registration, with its category, message_id and data. A plain upstream
// marker sent after each group message shows what came before it.
func TestGroupCopies(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	u := s.newUser(2, "com.example.sync")
	key := s.createGroup("sync-user", u.regs...)
	d0, d1 := s.deviceConn(u.devs[0]), s.deviceConn(u.devs[1])
	app, err := goxmpp.Options{
		Host: s.Info.XMPPAddr, User: s.Sender + "@gcm.googleapis.com", Password: s.APIKey,
		TLSConfig: s.tls.Clone(), Session: true, Mechanism: "PLAIN",
	}.NewClient()
	if err != nil {
		t.Fatalf("go-xmpp login: %v", err)
	}
	t.Cleanup(func() { app.Close() }) // no Recv is running by then
	// groupSend has device 0 write to the group and then a marker to the
	// app server, and device 1 receive the group message.
	groupSend := func(id, marker string) {
		t.Helper()
		d0.send(`{"to":"` + key + `","category":"com.example.sync","message_id":"` + id + `","data":{"dismiss":"` + id + `"}}`)
		d0.send(`{"to":"` + s.Sender + `@gcm.googleapis.com","category":"com.example.sync","message_id":"` + marker + `","data":{"m":"1"}}`)
		// Both are acked once durable; two writes done in one commit may be
		// answered in either order.
		acked := map[string]bool{}
		for range 2 {
			a := d0.expect(wait)
			if a.str("message_type") != "ack" {
				t.Fatalf("device 0 answer %v, want an ack", a.json)
			}
			acked[a.str("message_id")] = true
		}
		if !acked[id] || !acked[marker] {
			t.Fatalf("device 0 acks %v, want %s and %s", acked, id, marker)
		}
		if m := d1.expect(wait); m.str("message_id") != id || m.str("notification_key") != key {
			t.Fatalf("device 1 got %v", m.json)
		}
		d1.ack(id)
	}
	ackUp := func(m map[string]any) {
		t.Helper()
		b, _ := json.Marshal(map[string]any{"message_type": "ack", "message_id": m["message_id"], "to": m["from"]})
		if _, err := app.SendOrg(`<message><gcm xmlns="google:mobile:data">` + string(b) + `</gcm></message>`); err != nil {
			t.Fatal(err)
		}
	}

	groupSend("g-off", "marker-off")
	if _, _, m := recvGCM(t, app); m["message_id"] != "marker-off" {
		t.Fatalf("group copies off: app server got %v before the marker", m)
	} else {
		ackUp(m)
	}

	out, err := exec.Command(ccsdBin, "sender", "set", s.Sender, "--group-copies=true", "--data", s.Data).CombinedOutput()
	if err != nil {
		t.Fatalf("ccsd sender set: %v\n%s", err, out)
	}
	groupSend("g-on", "marker-on")
	from, typ, m := recvGCM(t, app)
	data, _ := m["data"].(map[string]any)
	if from != "devices@gcm.googleapis.com" || typ != "normal" || m["to"] != key || m["from"] != u.regs[0] ||
		m["category"] != "com.example.sync" || m["message_id"] != "g-on" || data["dismiss"] != "g-on" {
		t.Fatalf("group copy: from=%q type=%q %v", from, typ, m)
	}
	ackUp(m)
	if _, _, m := recvGCM(t, app); m["message_id"] != "marker-on" {
		t.Fatalf("after the one copy: %v, want the marker", m)
	}
}
