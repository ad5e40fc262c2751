package e2e

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestRevokedSenderSendsNothingMore: once a sender is revoked through the
// admin endpoint, what its open app-server session still sends (while ccsd
// waits for the session's </stream:stream>) is neither acked nor delivered.
func TestRevokedSenderSendsNothingMore(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	d := s.checkin()
	reg := s.register(d, s.Sender, "com.example")
	app := s.appServer()
	dev := s.deviceConn(d)

	app.send(`{"to":"` + reg + `","message_id":"before","data":{"n":"0"}}`)
	if ack := app.expect(wait); ack.str("message_type") != "ack" || ack.str("message_id") != "before" {
		t.Fatalf("ack: %v", ack.json)
	}
	if m := dev.expect(wait); m.str("message_id") != "before" {
		t.Fatalf("device got %v", m.json)
	}
	dev.ack("before")

	resp, err := http.Post("http://"+s.Info.AdminAddr+"/admin/senders/"+s.Sender+"/revoke", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("revoke: %s", resp.Status)
	}
	for i := 1; i <= 9; i++ {
		app.send(`{"to":"` + reg + `","message_id":"w-` + strconv.Itoa(i) + `","data":{"n":"` + strconv.Itoa(i) + `"}}`)
	}
	// Our </stream:stream> comes after them: once ccsd closes the socket it
	// has read (and so handled or dropped) every one.
	app.write(`</stream:stream>`)
	var got []string
	deadline := time.After(wait)
	for open := true; open; {
		select {
		case e, ok := <-app.in:
			if !ok {
				open = false
				break
			}
			got = append(got, e.String())
		case <-deadline:
			t.Fatalf("session not closed after revoke; got %v", got)
		}
	}
	if len(got) != 1 || !strings.Contains(got[0], "not-authorized") {
		t.Fatalf("after revoke the app server got %v, want only the not-authorized stream error", got)
	}
	// Had a w-* message been taken, it would be queued for the device
	// before a marker another sender sends now (one ordered queue per
	// device): the device gets nothing before the marker.
	other, key := s.newSender()
	mreg := s.register(d, other, "com.example")
	app2, err := dial(t, s.Info.XMPPAddr, s.tls, other+"@gcm.googleapis.com", key, "gcm.googleapis.com")
	if err != nil {
		t.Fatal(err)
	}
	if got := downMarker(t, app2, dev, mreg); len(got) != 0 {
		t.Fatalf("after revoke the device got %s", msgIDs(got))
	}
}
