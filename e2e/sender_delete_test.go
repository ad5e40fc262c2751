package e2e

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// TestSenderDeleteRunning: "ccsd sender delete" through a running
// server's admin endpoint refuses a sender with a live registration, and
// with --force unregisters it, closes the sender's app-server connections
// and forgets its key.
func TestSenderDeleteRunning(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	id, key := s.newSender()
	reg := strings.TrimSpace(mustCCSD(t, "device", "register", "--sender", id, "--app", "com.example", "--data", s.Data))
	app, err := dial(t, s.Info.XMPPAddr, s.tls, id+"@gcm.googleapis.com", key, "gcm.googleapis.com")
	if err != nil {
		t.Fatal(err)
	}
	_, errs, code := ccsdCmd(t, "sender", "delete", id, "--data", s.Data)
	if code == 0 || !strings.Contains(errs, "live registrations") {
		t.Fatalf("delete without --force: exit %d, %s", code, errs)
	}
	out := mustCCSD(t, "sender", "delete", "--force", id, "--data", s.Data)
	var got struct {
		Deleted       bool `json:"deleted"`
		Registrations int  `json:"registrations"`
	}
	if json.Unmarshal([]byte(out), &got) != nil || !got.Deleted || got.Registrations != 1 {
		t.Fatalf("delete --force printed %q", out)
	}
	app.closed(wait)
	if _, err := dial(t, s.Info.XMPPAddr, s.tls, id+"@gcm.googleapis.com", key, "gcm.googleapis.com"); !errors.Is(err, errNotAuthorized) {
		t.Fatalf("login of the deleted sender: %v, want not-authorized", err)
	}
	if list := mustCCSD(t, "sender", "list", "--data", s.Data); strings.Contains(list, id) {
		t.Fatalf("sender list still shows %s: %s", id, list)
	}
	// The default sender's app server sees the token as unregistered, not
	// unknown: the tombstone stays.
	def := s.appServer()
	def.send(`{"to":"` + reg + `","message_id":"d-1"}`)
	if a := def.expect(wait); a.str("message_type") != "nack" {
		t.Fatalf("send to the deleted sender's registration: %v", a.json)
	}
}
