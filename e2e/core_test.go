package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	ccsdevice "github.com/ccsd/ccsd/device"
)

const wait = 10 * time.Second

// TestDownstreamAckDeliveryReceipt: app server sends, ccsd acks, device
// receives, device acks, app server gets the receipt and acks it.
func TestDownstreamAckDeliveryReceipt(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	d := s.checkin()
	reg := s.register(d, s.Sender, "com.example.chat")
	app := s.appServer()
	dev := s.deviceConn(d)

	app.send(`{"to":"` + reg + `","message_id":"m-1","delivery_receipt_requested":true,"data":{"text":"a <b> & \"c\""},"collapse_key":"k"}`)
	ack := app.expect(wait)
	if ack.hasType || ack.str("message_type") != "ack" || ack.str("message_id") != "m-1" || ack.str("from") != reg {
		t.Fatalf("ack: type=%q %v", ack.typ, ack.json)
	}

	got := dev.expect(wait)
	if got.str("message_id") != "m-1" || got.str("to") != reg || got.str("from") != s.Sender || got.str("category") != "com.example.chat" || got.str("collapse_key") != "k" {
		t.Fatalf("device copy: %v", got.json)
	}
	if data, _ := got.json["data"].(map[string]any); data["text"] != `a <b> & "c"` {
		t.Fatalf("data did not survive XML and JSON escaping: %v", got.json["data"])
	}
	dev.ack("m-1")

	r := app.expect(wait)
	if r.typ != "normal" || r.str("message_type") != "receipt" || r.str("message_id") != "dr2:m-1" || r.str("from") != "gcm.googleapis.com" || r.str("category") != "com.example.chat" {
		t.Fatalf("receipt: type=%q %v", r.typ, r.json)
	}
	data, _ := r.json["data"].(map[string]any)
	if data["message_status"] != "MESSAGE_SENT_TO_DEVICE" || data["original_message_id"] != "m-1" || data["device_registration_id"] != reg {
		t.Fatalf("receipt data: %v", data)
	}
	app.send(`{"to":"gcm.googleapis.com","message_id":"dr2:m-1","message_type":"ack"}`)

	// Acked and receipted: nothing comes again, on a new session either.
	// The receipt came from the commit of the device's ack, so that one is
	// durable; the app server's ack of the receipt commits asynchronously:
	// retry with a new connection until it has.
	dev.close()
	dev = s.deviceConn(d)
	if got := downMarker(t, app, dev, reg); len(got) != 0 {
		t.Fatalf("the next device session got %s", msgIDs(got))
	}
	app.close()
	checkFor(t, wait, 20*time.Millisecond, func() error {
		app = s.appServer()
		got := upMarker(t, dev, app, s.Sender, "com.example.chat")
		if len(got) != 0 {
			app.close()
		}
		return errIDs("a new app-server connection", got, "")
	})
}

// TestOfflineQueueAndRedelivery: messages to an offline device wait for it;
// a message the device received but did not ack comes again on its next
// session (at-least-once); an acked one does not.
func TestOfflineQueueAndRedelivery(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	d := s.checkin()
	reg := s.register(d, s.Sender, "com.example")
	app := s.appServer()
	for i := 1; i <= 3; i++ {
		app.send(fmt.Sprintf(`{"to":"%s","message_id":"m-%d","data":{"n":"%d"}}`, reg, i, i))
	}
	for i := 1; i <= 3; i++ {
		if a := app.expect(wait); a.str("message_type") != "ack" {
			t.Fatalf("want ack, got %v", a.json)
		}
	}

	dev := s.deviceConn(d)
	for i := 1; i <= 3; i++ {
		if m := dev.expect(wait); m.str("message_id") != fmt.Sprintf("m-%d", i) {
			t.Fatalf("offline queue order: got %v", m.json)
		}
	}
	dev.ack("m-2")
	dev.close()

	// The ack commits asynchronously, and until it has m-2 is still
	// queued (at least once): retry with a new session until it shows.
	checkFor(t, wait, 20*time.Millisecond, func() error {
		dev = s.deviceConn(d)
		got := downMarker(t, app, dev, reg)
		dev.close()
		return errIDs("the next session", got, "m-1,m-3")
	})
}

// TestNackCodes drives every nack reachable from the app-server side.
func TestNackCodes(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	d := s.checkin()
	reg := s.register(d, s.Sender, "com.example")
	gone := s.register(d, s.Sender, "com.example.gone")
	s.unregister(d, s.Sender, "com.example.gone")
	other, _ := s.newSender()
	foreign := s.register(d, other, "com.example")
	app := s.appServer()

	cases := []struct {
		name, payload, code, desc string
	}{
		{"unknown registration", `{"to":"nope","message_id":"n1"}`, "BAD_REGISTRATION", "Invalid token on 'to' field: nope"},
		{"other sender's registration", `{"to":"` + foreign + `","message_id":"n2"}`, "BAD_REGISTRATION", "Invalid token"},
		{"unregistered", `{"to":"` + gone + `","message_id":"n3"}`, "DEVICE_UNREGISTERED", ""},
		{"ttl not a number", `{"to":"` + reg + `","message_id":"n4","time_to_live":"abc"}`, "INVALID_JSON", `JSON_TYPE_ERROR : Field "time_to_live" must be a JSON java.lang.Number`},
		{"ttl out of range", `{"to":"` + reg + `","message_id":"n5","time_to_live":2419201}`, "INVALID_JSON", "INVALID_TTL"},
		{"data too big", `{"to":"` + reg + `","message_id":"n6","data":{"k":"` + strings.Repeat("x", 4097) + `"}}`, "INVALID_JSON", "MESSAGE_TOO_BIG"},
		{"reserved data key", `{"to":"` + reg + `","message_id":"n7","data":{"from":"x"}}`, "INVALID_JSON", "INVALID_DATA_KEY"},
		{"missing to", `{"message_id":"n8"}`, "INVALID_JSON", "MISSING_REGISTRATION"},
		{"bool of wrong type", `{"to":"` + reg + `","message_id":"n9","delivery_receipt_requested":"yes"}`, "INVALID_JSON", "JSON_TYPE_ERROR"},
		{"nack from app server", `{"to":"` + reg + `","message_id":"n10","message_type":"nack"}`, "BAD_ACK", ""},
		{"ack with bad to", `{"to":5,"message_id":"n11","message_type":"ack"}`, "BAD_ACK", ""},
	}
	for _, c := range cases {
		app.send(c.payload)
		n := app.expect(wait)
		if n.hasType || n.str("message_type") != "nack" || n.str("error") != c.code || n.str("message_id") == "" || !strings.Contains(n.str("error_description"), c.desc) {
			t.Errorf("%s: got type=%q %v, want nack %s %q", c.name, n.typ, n.json, c.code, c.desc)
		}
	}

	// Unusable stanzas bounce as XMPP stanza errors (spec §4.4), echoing
	// the stanza id.
	app.write(`<message id="bad-1"><gcm xmlns="google:mobile:data">{"to":"x","data":{}}</gcm></message>`)
	e := app.next(wait)
	if typ, _ := e.attr("type"); typ != "error" || !strings.Contains(string(e.Inner), "Missing Required Field: message_id") {
		t.Fatalf("stanza error: %s", e)
	}
	if id, _ := e.attr("id"); id != "bad-1" {
		t.Fatalf("stanza error id %q", id)
	}
	app.write(`<message id="bad-2"><gcm xmlns="google:mobile:data">not json</gcm></message>`)
	if e := app.next(wait); !strings.Contains(string(e.Inner), "JSON_PARSING_ERROR") {
		t.Fatalf("stanza error: %s", e)
	}

	// Nothing above reached the device.
	dev := s.deviceConn(d)
	if got := downMarker(t, app, dev, reg); len(got) != 0 {
		t.Fatalf("the device got %s", msgIDs(got))
	}
}

// TestDedupOfRetries: a retry of an accepted message_id is acked again but
// delivered once.
func TestDedupOfRetries(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	d := s.checkin()
	reg := s.register(d, s.Sender, "com.example")
	app := s.appServer()
	for i := 0; i < 3; i++ {
		app.send(`{"to":"` + reg + `","message_id":"same"}`)
		if a := app.expect(wait); a.str("message_type") != "ack" {
			t.Fatalf("retry %d: %v", i, a.json)
		}
	}
	dev := s.deviceConn(d)
	if got := downMarker(t, app, dev, reg); msgIDs(got) != "same" {
		t.Fatalf("the device got %q, want one \"same\"", msgIDs(got))
	}
}

// TestUpstream: device sends to its app server; ccsd acks the device; the
// app server gets it as type normal and acks it; unacked upstream comes
// again on the app server's next connection.
func TestUpstream(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	d, reg, _ := s.onlineDeviceClient(s.Sender, "com.example.chat")
	dev := d.upstream(t)

	if err := dev.send(ccsdevice.Upstream{Sender: s.Sender, Category: "com.example.chat", MessageID: "u-1", Data: map[string]any{"text": "hi"}}); err != nil {
		t.Fatalf("device ack of u-1: %v", err)
	}
	// Sent while no app server was connected: queued.
	app := s.appServer()
	up := app.expect(wait)
	if up.typ != "normal" || up.str("from") != reg || up.str("category") != "com.example.chat" || up.str("message_id") != "u-1" {
		t.Fatalf("upstream: type=%q %v", up.typ, up.json)
	}
	if _, ok := up.json["message_type"]; ok {
		t.Fatalf("upstream data message must have no message_type: %v", up.json)
	}
	// Not acked: a new connection gets it again.
	app.close()
	app = s.appServer()
	up = app.expect(wait)
	if up.str("message_id") != "u-1" {
		t.Fatalf("redelivered upstream: %v", up.json)
	}
	app.ackUpstream(reg, "u-1")
	app.close()
	// The ack commits asynchronously: retry with a new connection until
	// it has.
	checkFor(t, wait, 20*time.Millisecond, func() error {
		app = s.appServer()
		got := upMarker(t, dev, app, s.Sender, "com.example.chat")
		if len(got) != 0 {
			app.close()
		}
		return errIDs("a new app-server connection", got, "")
	})

	// Bad upstream gets a nack in the protocol's terms.
	err := dev.send(ccsdevice.Upstream{Sender: "999", Category: "com.example.chat", MessageID: "u-2"})
	if code := nackCode(t, err); code != "BAD_REGISTRATION" {
		t.Fatalf("upstream to a sender the device is not registered with: %v", err)
	}
}

// TestSASLFailure: a wrong API key gets not-authorized and the stream ends.
func TestSASLFailure(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	_, err := dial(t, s.Info.XMPPAddr, s.tls, s.Sender+"@gcm.googleapis.com", "wrong", "gcm.googleapis.com")
	if err != errNotAuthorized {
		t.Fatalf("wrong key: %v, want not-authorized", err)
	}
	_, err = dial(t, s.Info.XMPPAddr, s.tls, "nobody", s.APIKey, "gcm.googleapis.com")
	if err != errNotAuthorized {
		t.Fatalf("unknown sender: %v", err)
	}
	d := s.checkin()
	_, err = dial(t, s.Info.DeviceAddr, s.tls, d.ID, "wrong", "gcm.googleapis.com")
	if err != errNotAuthorized {
		t.Fatalf("device wrong token: %v", err)
	}
	// Both login forms and the FCM domain work.
	for _, u := range []struct{ user, domain string }{{s.Sender, "gcm.googleapis.com"}, {s.Sender + "@fcm.googleapis.com", "fcm.googleapis.com"}} {
		c, err := dial(t, s.Info.XMPPAddr, s.tls, u.user, s.APIKey, u.domain)
		if err != nil {
			t.Fatalf("login as %s: %v", u.user, err)
		}
		c.close()
	}
}

// TestDeviceConflict: a second login of the same device replaces the first,
// which gets a conflict stream error.
func TestDeviceConflict(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	d := s.checkin()
	first := s.deviceConn(d)
	second := s.deviceConn(d)
	last := first.closed(wait)
	if last == nil || last.XMLName.Local != "error" || !strings.Contains(string(last.Inner), "conflict") {
		t.Fatalf("first session ended with %v, want a conflict stream error", last)
	}
	reg := s.register(d, s.Sender, "com.example")
	app := s.appServer()
	app.send(`{"to":"` + reg + `","message_id":"m"}`)
	app.expect(wait)
	if m := second.expect(wait); m.str("message_id") != "m" {
		t.Fatalf("second session: %v", m.json)
	}
}

// TestRegisterErrors: the register endpoint answers bad input GCM's way.
func TestRegisterErrors(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	d := s.checkin()
	if code, body := s.register3(d, url.Values{"sender": {s.Sender}}); code != 400 || body != "Error=INVALID_PARAMETERS" {
		t.Errorf("missing app: %d %q", code, body)
	}
	if code, body := s.register3(d, url.Values{"app": {"a"}, "sender": {"12345"}}); code != 400 || body != "Error=INVALID_SENDER" {
		t.Errorf("unknown sender: %d %q", code, body)
	}
	if code, body := s.register3(device{ID: d.ID, Token: "bad"}, url.Values{"app": {"a"}, "sender": {s.Sender}}); code != 401 || body != "Error=AUTHENTICATION_FAILED" {
		t.Errorf("bad token: %d %q", code, body)
	}
	a := s.register(d, s.Sender, "a")
	if b := s.register(d, s.Sender, "a"); a != b {
		t.Errorf("registering twice gave two tokens")
	}
	if len(a) < 22 {
		t.Errorf("registration id %q is too short to hold 128 random bits", a)
	}
}

// TestFlowControl: past 100 pending messages on one connection, ccsd nacks
// with SERVICE_UNAVAILABLE (retryable); every message gets exactly one
// answer. Commits are slowed with --commit-delay so that 150 pipelined
// messages are all pending at once.
func TestFlowControl(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--commit-delay", "2s")
	d := s.checkin()
	reg := s.register(d, s.Sender, "com.example")
	app := s.appServer()
	const n = 150
	var b strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, `<message id="f%d"><gcm xmlns="google:mobile:data">{"to":"%s","message_id":"f-%d"}</gcm></message>`, i, reg, i)
	}
	app.write(b.String())
	answers := map[string]string{}
	acks, unavailable := 0, 0
	for i := 0; i < n; i++ {
		m := app.expect(wait)
		id := m.str("message_id")
		if _, dup := answers[id]; dup {
			t.Fatalf("two answers for %s", id)
		}
		answers[id] = m.str("message_type")
		switch {
		case m.str("message_type") == "ack":
			acks++
		case m.str("error") == "SERVICE_UNAVAILABLE":
			unavailable++
		default:
			t.Fatalf("unexpected answer %v", m.json)
		}
	}
	if acks != 100 || unavailable != 50 {
		t.Fatalf("acks=%d service_unavailable=%d, want 100 and 50", acks, unavailable)
	}
	// The window frees up: a retry now succeeds.
	app.send(`{"to":"` + reg + `","message_id":"f-149"}`)
	if m := app.expect(wait); m.str("message_type") != "ack" {
		t.Fatalf("retry after the window freed: %v", m.json)
	}
}

// TestDrainingOnShutdown: SIGTERM sends CONNECTION_DRAINING (no type
// attribute, with a message_id); a message sent after it is nacked
// CONNECTION_DRAINING; one accepted before it is still acked; then the
// stream ends and the process exits cleanly.
func TestDrainingOnShutdown(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--commit-delay", "2s")
	d := s.checkin()
	reg := s.register(d, s.Sender, "com.example")
	app := s.appServer()
	app.send(`{"to":"` + reg + `","message_id":"before"}`)
	// A connection's stanzas are handled in order, and this one is
	// answered without a commit: once its nack is back, "before" has been
	// read and waits in the slow commit.
	app.send(`{"to":"` + reg + `","message_id":"probe","time_to_live":-1}`)
	if m := app.expect(wait); m.str("message_id") != "probe" || m.str("error") != "INVALID_JSON" {
		t.Fatalf("probe: %v", m.json)
	}
	if err := s.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	c := app.expect(wait)
	if c.hasType || c.str("message_type") != "control" || c.str("control_type") != "CONNECTION_DRAINING" || c.str("message_id") == "" {
		t.Fatalf("control: type=%q %v", c.typ, c.json)
	}
	app.send(`{"to":"` + reg + `","message_id":"after"}`)
	got := map[string]msg{}
	for i := 0; i < 2; i++ {
		m := app.expect(wait)
		got[m.str("message_id")] = m
	}
	if got["before"].str("message_type") != "ack" {
		t.Errorf("message accepted before draining: %v", got["before"].json)
	}
	if got["after"].str("error") != "CONNECTION_DRAINING" {
		t.Errorf("message sent while draining: %v", got["after"].json)
	}
	app.closed(wait)
	if err := s.Wait(); err != nil {
		t.Fatalf("exit after drain: %v", err)
	}
}

// TestOrderAndTTL: pipelined messages keep their order both ways; a message
// whose time_to_live ran out while the device was offline is never
// delivered; time_to_live 0 to an offline device is acked and dropped, to an
// online one delivered.
func TestOrderAndTTL(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	d := s.checkin()
	reg := s.register(d, s.Sender, "com.example")
	app := s.appServer()

	var b strings.Builder
	for i := 0; i < 50; i++ {
		fmt.Fprintf(&b, `<message><gcm xmlns="google:mobile:data">{"to":"%s","message_id":"o-%d"}</gcm></message>`, reg, i)
	}
	app.write(b.String())
	for i := 0; i < 50; i++ {
		app.expect(wait)
	}
	app.send(`{"to":"` + reg + `","message_id":"short","time_to_live":1}`)
	app.send(`{"to":"` + reg + `","message_id":"zero-offline","time_to_live":0}`)
	for i := 0; i < 2; i++ {
		if a := app.expect(wait); a.str("message_type") != "ack" {
			t.Fatalf("ttl message: %v", a.json)
		}
	}
	ackedAt := time.Now()
	// "short" must have expired before the device connects. Expiry is a
	// point in time, not an event ccsd reports, so this waits for the
	// time itself: 1 s after ccsd accepted it, which was before its ack
	// came back.
	time.Sleep(time.Until(ackedAt.Add(time.Second + 50*time.Millisecond)))

	dev := s.deviceConn(d)
	for i := 0; i < 50; i++ {
		m := dev.expect(wait)
		if want := fmt.Sprintf("o-%d", i); m.str("message_id") != want {
			t.Fatalf("downstream order: got %s, want %s", m.str("message_id"), want)
		}
		dev.ack(m.str("message_id"))
	}
	if got := downMarker(t, app, dev, reg); len(got) != 0 { // neither "short" nor "zero-offline"
		t.Fatalf("after the 50, the device got %s", msgIDs(got))
	}

	app.send(`{"to":"` + reg + `","message_id":"zero-online","time_to_live":0}`)
	app.expect(wait)
	if m := dev.expect(wait); m.str("message_id") != "zero-online" {
		t.Fatalf("ttl 0 to an online device: %v", m.json)
	}

	b.Reset()
	for i := 0; i < 50; i++ {
		fmt.Fprintf(&b, `<message><gcm xmlns="google:mobile:data">{"to":"%s@gcm.googleapis.com","category":"com.example","message_id":"up-%d"}</gcm></message>`, s.Sender, i)
	}
	dev.write(b.String())
	for i := 0; i < 50; i++ {
		dev.expect(wait) // acks
	}
	for i := 0; i < 50; i++ {
		m := app.expect(wait)
		if want := fmt.Sprintf("up-%d", i); m.str("message_id") != want {
			t.Fatalf("upstream order: got %s, want %s", m.str("message_id"), want)
		}
		app.ackUpstream(reg, m.str("message_id"))
	}
}

// TestRevokeClosesSessions: revoking a sender through the admin endpoint
// ends its live app-server sessions (not-authorized stream error) and
// refuses its next login.
func TestRevokeClosesSessions(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	app := s.appServer()
	resp, err := http.Post("http://"+s.Info.AdminAddr+"/admin/senders/"+s.Sender+"/revoke", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("revoke: %s", resp.Status)
	}
	last := app.closed(wait)
	if last == nil || !strings.Contains(string(last.Inner), "not-authorized") {
		t.Fatalf("revoked session ended with %v, want a not-authorized stream error", last)
	}
	if _, err := dial(t, s.Info.XMPPAddr, s.tls, s.Sender, s.APIKey, "gcm.googleapis.com"); err != errNotAuthorized {
		t.Fatalf("login after revoke: %v", err)
	}
}

// TestUpstreamMovesToOtherConnection: upstream messages are spread over a
// sender's connections; those in flight on a connection that closes
// without acking are delivered on the sender's other connection, once.
func TestUpstreamMovesToOtherConnection(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	a, b := s.appServer(), s.appServer()
	d, reg, _ := s.onlineDeviceClient(s.Sender, "com.example")
	dev := d.upstream(t)
	const n = 20
	sent := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() {
			sent <- dev.send(ccsdevice.Upstream{Sender: s.Sender, Category: "com.example", MessageID: fmt.Sprintf("mv-%d", i)})
		}()
	}
	for i := 0; i < n; i++ {
		if err := <-sent; err != nil {
			t.Fatalf("upstream: %v", err)
		}
	}
	// Both connections get some; a acks nothing and closes; b acks all.
	seen := map[string]int{}
	onA := map[string]bool{}
	gotA := 0
	for len(seen) < n {
		select {
		case e := <-a.in:
			if text, ok := e.gcm(); ok && strings.Contains(text, "mv-") {
				gotA++
				var v struct {
					MessageID string `json:"message_id"`
				}
				_ = json.Unmarshal([]byte(text), &v)
				seen[v.MessageID]++
				onA[v.MessageID] = true
			}
		case e := <-b.in:
			text, _ := e.gcm()
			var v struct {
				MessageID string `json:"message_id"`
			}
			_ = json.Unmarshal([]byte(text), &v)
			seen[v.MessageID]++
			b.ackUpstream(reg, v.MessageID)
		case <-time.After(wait):
			t.Fatalf("only %d of %d upstream messages arrived", len(seen), n)
		}
	}
	if gotA == 0 {
		t.Fatal("no upstream message went to the first connection: nothing to move")
	}
	a.close()
	moved := 0
	for moved < gotA {
		m := b.expect(wait)
		if !onA[m.str("message_id")] {
			t.Fatalf("%s came again on b though b had acked it", m.str("message_id"))
		}
		seen[m.str("message_id")]++
		b.ackUpstream(reg, m.str("message_id"))
		moved++
	}
	if got := upMarker(t, dev, b, s.Sender, "com.example"); len(got) != 0 {
		t.Fatalf("after the moved ones b got %s", msgIDs(got))
	}
	// Each message moved from a arrived twice (on a, then on b), every
	// other exactly once.
	for id, c := range seen {
		if want := map[bool]int{true: 2, false: 1}[onA[id]]; c != want {
			t.Errorf("%s seen %d times, want %d", id, c, want)
		}
	}
	t.Logf("%d of %d were in flight on the closed connection and moved", gotA, n)
}

// TestDeviceNackKeepsMessage: a device that nacks a message frees its window
// slot (with 101 queued and a window of 100, a nack lets the 101st through
// without any ack); the message stays queued and is offered again on the
// next session.
func TestDeviceNackKeepsMessage(t *testing.T) {
	t.Parallel()
	// 101 queued needs a per-registration bound above GCM's 100.
	s := startServer(t, "--log-level", "info", "--max-queued-per-registration", "200")
	d := s.checkin()
	reg := s.register(d, s.Sender, "com.example")
	app := s.appServer()
	for i := 0; i <= 100; i++ {
		app.send(fmt.Sprintf(`{"to":"%s","message_id":"n-%d"}`, reg, i))
		app.expect(wait)
	}
	dev := s.deviceConn(d)
	for i := 0; i < 100; i++ {
		dev.expect(wait)
	}
	// The window is full. What is checked is that the 101st is NOT sent:
	// no later event on the device's stream is ordered after a delivery
	// that does not happen, so this one wait stays bounded.
	dev.expectNone(300 * time.Millisecond)
	dev.send(`{"message_type":"nack","message_id":"n-0"}`)
	if m := dev.expect(wait); m.str("message_id") != "n-100" {
		t.Fatalf("after the nack freed a slot: %v", m.json)
	}
	dev.close()
	dev = s.deviceConn(d)
	if m := dev.expect(wait); m.str("message_id") != "n-0" {
		t.Fatalf("after a nack, the next session got %v first", m.json)
	}
}

// TestUpstreamRedeliveredWhileConnected: an upstream message the app server
// does not ack is sent again after --upstream-redeliver even though the
// connection stays up; once acked it stops.
func TestUpstreamRedeliveredWhileConnected(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--upstream-redeliver", "1s")
	app := s.appServer()
	d, reg, _ := s.onlineDeviceClient(s.Sender, "com.example")
	d.upstream(t).sendAcked(t, s.Sender, "com.example", "r-1")
	first := time.Now()
	if m := app.expect(wait); m.str("message_id") != "r-1" {
		t.Fatalf("got %v", m.json)
	}
	if m := app.expect(wait); m.str("message_id") != "r-1" {
		t.Fatalf("redelivery: got %v", m.json)
	}
	if el := time.Since(first); el < 900*time.Millisecond {
		t.Fatalf("redelivered after %v, before the 1s timeout", el)
	}
	app.ackUpstream(reg, "r-1")
	// What is checked is that a timer does NOT fire again: no event marks
	// its not firing, so this waits, bounded, past two more periods.
	app.expectNone(2500 * time.Millisecond)
}

// TestUpstreamSameMessageIDFromTwoDevices: message ids are chosen per
// device, so two devices may both send "1". An ack names its message by
// "to" as well: acking device B's "1" (the second in flight) leaves device
// A's, and A's is the one delivered again on the next connection.
func TestUpstreamSameMessageIDFromTwoDevices(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	app := s.appServer()
	da, regA, _ := s.onlineDeviceClient(s.Sender, "com.example")
	db, regB, _ := s.onlineDeviceClient(s.Sender, "com.example")
	for _, d := range []device{da, db} {
		d.upstream(t).sendAcked(t, s.Sender, "com.example", "1")
	}
	for i := 0; i < 2; i++ {
		if m := app.expect(wait); m.str("message_id") != "1" {
			t.Fatalf("got %v", m.json)
		}
	}
	app.ackUpstream(regB, "1")
	app.close()
	// The ack commits asynchronously: retry with a new connection until
	// only A's message comes again.
	devA := da.upstream(t)
	checkFor(t, wait, 20*time.Millisecond, func() error {
		app = s.appServer()
		got := upMarker(t, devA, app, s.Sender, "com.example")
		app.close()
		if len(got) != 1 || got[0].str("from") != regA || got[0].str("message_id") != "1" {
			var from []string
			for _, m := range got {
				from = append(from, m.str("from"))
			}
			return fmt.Errorf("redelivered messages from %v, want device A's only (from %s)", from, regA)
		}
		return nil
	})
}
