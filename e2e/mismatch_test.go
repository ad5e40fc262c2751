package e2e

import (
	"encoding/json"
	"testing"
)

// TestMismatchSenderID: over legacy HTTP, a registration id of another
// sender is answered MismatchSenderId (spec §11), an unknown one
// InvalidRegistration; nothing is delivered. Over XMPP both stay
// BAD_REGISTRATION with the same words, which is all CCS documents.
func TestMismatchSenderID(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	other, _ := s.newSender()
	d := s.checkin()
	foreign := s.register(d, other, "com.example.other")

	code, body := s.send(`{"registration_ids":["` + foreign + `","nope"],"data":{"k":"v"}}`)
	var res struct {
		Success int `json:"success"`
		Failure int `json:"failure"`
		Results []struct {
			Error string `json:"error"`
		} `json:"results"`
	}
	if code != 200 || json.Unmarshal(body, &res) != nil || len(res.Results) != 2 {
		t.Fatalf("/gcm/send: %d %s", code, body)
	}
	if res.Success != 0 || res.Failure != 2 || res.Results[0].Error != "MismatchSenderId" || res.Results[1].Error != "InvalidRegistration" {
		t.Fatalf("/gcm/send results: %s, want MismatchSenderId then InvalidRegistration", body)
	}

	app := s.appServer()
	app.send(`{"to":"` + foreign + `","message_id":"x1"}`)
	app.send(`{"to":"nope","message_id":"x2"}`)
	for _, want := range []struct{ id, to string }{{"x1", foreign}, {"x2", "nope"}} {
		n := app.expect(wait)
		if n.str("message_type") != "nack" || n.str("message_id") != want.id || n.str("error") != "BAD_REGISTRATION" ||
			n.str("error_description") != "Invalid token on 'to' field: "+want.to {
			t.Fatalf("XMPP answer to %s: %v, want the BAD_REGISTRATION of an unknown token", want.id, n)
		}
	}
}
