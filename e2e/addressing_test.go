package e2e

import (
	"encoding/json"
	"testing"
)

// TestUpstreamAddressing: upstream messages and receipts reach the app
// server as CCS wrote them (spec §5.1): from="devices@gcm.googleapis.com",
// to its own bound JID, type="normal"; acks, which answer what the app
// server sent, carry none of these.
func TestUpstreamAddressing(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	d := s.checkin()
	reg := s.register(d, s.Sender, "com.example")
	app := s.appServer()
	dev := s.deviceConn(d)

	app.send(`{"to":"` + reg + `","message_id":"r-1","delivery_receipt_requested":true}`)
	ack := app.next(wait)
	if _, has := ack.attr("from"); has {
		t.Errorf("ack has a from attribute: %s", ack)
	}
	dev.expect(wait)
	dev.send(`{"message_type":"ack","message_id":"r-1"}`)
	dev.send(`{"to":"` + s.Sender + `@gcm.googleapis.com","category":"com.example","message_id":"u-1","data":{"k":"v"}}`)
	for i := 0; i < 2; i++ { // the receipt and the upstream message, in either order
		e := app.next(wait)
		text, _ := e.gcm()
		var v map[string]any
		_ = json.Unmarshal([]byte(text), &v)
		from, _ := e.attr("from")
		to, _ := e.attr("to")
		typ, _ := e.attr("type")
		if from != "devices@gcm.googleapis.com" || to != app.JID || typ != "normal" {
			t.Errorf("%v reached the app server with from=%q to=%q type=%q, want devices@gcm.googleapis.com, %q, normal", v["message_id"], from, to, typ, app.JID)
		}
	}
}
