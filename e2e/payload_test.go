package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// Payloads that used to get past ccsd's size and length checks (hardening
// issue, items 7 and 8), sent to the real server over the network.
var (
	// dupData repeats one data key 12 times: a map kept one copy, so 48 KB
	// passed the 4096-byte check and reached the device.
	dupData = func() string {
		v := strings.Repeat("x", 4000)
		parts := make([]string, 12)
		for i := range parts {
			parts[i] = `"k":"` + v + `"`
		}
		return `{` + strings.Join(parts, ",") + `}`
	}()
	// controlData counts 4000 bytes decoded but is 24 KB of JSON, every
	// character an escape JSON cannot drop.
	controlData = `{"k":"` + strings.Repeat(`\u0001`, 4000) + `"}`
	// escapedData is 4000 bytes written as 24 KB of needless escapes: valid,
	// and delivered as the 4000 bytes it stands for.
	escapedData = `{"k":"` + strings.Repeat(`\u0041`, 4000) + `"}`
	longID      = strings.Repeat("m", 40<<10)
	longKey     = strings.Repeat("c", 600)
)

// TestPayloadLimitsXMPP: each smuggling attempt of an app server gets an
// INVALID_JSON nack (not the retryable INTERNAL_SERVER_ERROR a 40 KB
// message_id used to get) and reaches no device; needless escapes are
// delivered compact.
func TestPayloadLimitsXMPP(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	d := s.checkin()
	reg := s.register(d, s.Sender, "com.example")
	app := s.appServer()

	cases := []struct{ name, id, payload, desc string }{
		{"repeated data key", "p1", `{"to":"` + reg + `","message_id":"p1","data":` + dupData + `}`, `JSON_PARSING_ERROR : Duplicate key in data: "k"`},
		{"repeated field", "p2", `{"to":"` + reg + `","message_id":"p2","to":"` + reg + `"}`, `JSON_PARSING_ERROR : Duplicate field: "to"`},
		{"escapes JSON cannot drop", "p3", `{"to":"` + reg + `","message_id":"p3","data":` + controlData + `}`, "MESSAGE_TOO_BIG"},
		{"40 KB message_id", longID, `{"to":"` + reg + `","message_id":"` + longID + `"}`, `INVALID_PARAMETERS : Field "message_id" is longer than 512 bytes`},
		{"600-byte collapse_key", "p5", `{"to":"` + reg + `","message_id":"p5","collapse_key":"` + longKey + `"}`, `INVALID_PARAMETERS : Field "collapse_key" is longer than 512 bytes`},
	}
	for _, c := range cases {
		app.send(c.payload)
		n := app.expect(wait)
		if n.str("message_type") != "nack" || n.str("error") != "INVALID_JSON" || n.str("message_id") != c.id || !strings.Contains(n.str("error_description"), c.desc) {
			t.Errorf("%s: got %.300v, want nack INVALID_JSON %q", c.name, n.json, c.desc)
		}
	}
	app.send(`{"to":"` + reg + `","message_id":"ok","data":` + escapedData + `}`)
	if a := app.expect(wait); a.str("message_type") != "ack" || a.str("message_id") != "ok" {
		t.Fatalf("escaped data: %.300v", a.json)
	}

	// The device's queue holds the accepted message only: it comes first,
	// so none of the refused ones (sent before it) was queued.
	dev := s.deviceConn(d)
	m := dev.expect(wait)
	data, _ := m.json["data"].(map[string]any)
	if m.str("message_id") != "ok" || data["k"] != strings.Repeat("A", 4000) {
		t.Fatalf("device got %.300v", m.json)
	}
	if len(m.raw) > 4096+512 {
		t.Fatalf("device copy is %d bytes for 4000 bytes of data: escapes were kept", len(m.raw))
	}
}

// TestPayloadLimitsDeviceUpstream: a device's upstream message with a 40 KB
// message_id or an over-long category is nacked INVALID_JSON and never
// reaches the app server.
func TestPayloadLimitsDeviceUpstream(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	d := s.checkin()
	reg := s.register(d, s.Sender, "com.example.chat")
	dev := s.deviceConn(d)
	to := s.Sender + "@gcm.googleapis.com"

	cases := []struct{ name, id, payload, desc string }{
		{"40 KB message_id", longID, `{"to":"` + to + `","category":"com.example.chat","message_id":"` + longID + `","data":{"a":"b"}}`, `Field "message_id" is longer than 512 bytes`},
		{"long category", "u2", `{"to":"` + to + `","category":"` + longKey + `","message_id":"u2"}`, `Field "category" is longer than 512 bytes`},
		{"repeated data key", "u3", `{"to":"` + to + `","category":"com.example.chat","message_id":"u3","data":` + dupData + `}`, `Duplicate key in data`},
	}
	for _, c := range cases {
		dev.send(c.payload)
		n := dev.expect(wait)
		if n.str("message_type") != "nack" || n.str("error") != "INVALID_JSON" || n.str("message_id") != c.id || !strings.Contains(n.str("error_description"), c.desc) {
			t.Errorf("%s: got %.300v, want nack INVALID_JSON %q", c.name, n.json, c.desc)
		}
	}
	dev.send(`{"to":"` + to + `","category":"com.example.chat","message_id":"u-ok"}`)
	if a := dev.expect(wait); a.str("message_type") != "ack" || a.str("message_id") != "u-ok" {
		t.Fatalf("valid upstream: %.300v", a.json)
	}
	app := s.appServer()
	if up := app.expect(wait); up.str("message_id") != "u-ok" || up.str("from") != reg {
		t.Fatalf("app server got %.300v first, want u-ok", up.json)
	}
}

// TestPayloadLimitsHTTP: the same attempts through /gcm/send are refused as
// a whole with 400 and the legacy {"error": ...} body, except data over the
// size budget, which the legacy API reports per recipient as MessageTooBig
// (spec §11); over-long ids on /gcm/notification are 400 too. Needless
// escapes are delivered compact.
func TestPayloadLimitsHTTP(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	d := s.checkin()
	reg := s.register(d, s.Sender, "com.example")

	for name, body := range map[string]string{
		"repeated data key":     `{"to":"` + reg + `","data":` + dupData + `}`,
		"repeated field":        `{"to":"nobody","to":"` + reg + `"}`,
		"600-byte collapse_key": `{"to":"` + reg + `","collapse_key":"` + longKey + `"}`,
		"long registration id":  `{"registration_ids":["` + reg + `","` + longKey + `"]}`,
	} {
		code, b := s.send(body)
		var v map[string]any
		if code != 400 || json.Unmarshal(b, &v) != nil || v["error"] == nil {
			t.Errorf("%s: %d %.300s, want 400 with a JSON error", name, code, b)
		}
	}
	code, b := s.send(`{"to":"` + reg + `","data":` + controlData + `}`)
	if code != 200 || !strings.Contains(string(b), `"error":"MessageTooBig"`) {
		t.Errorf("escapes JSON cannot drop: %d %.300s, want MessageTooBig", code, b)
	}
	// The plain-text form goes through the same checks.
	plain := url.Values{"registration_id": {reg}, "collapse_key": {longKey}}.Encode()
	if code, b := s.sendPlain(plain); code != 400 || !strings.HasPrefix(string(b), "Error=") {
		t.Errorf("plain text, long collapse_key: %d %q", code, b)
	}

	// The device-group API bounds its ids the same way.
	for name, body := range map[string]map[string]any{
		"create, long registration id": {"operation": "create", "notification_key_name": "u", "registration_ids": []string{reg, longKey}},
		"add, long notification_key":   {"operation": "add", "notification_key": longKey, "registration_ids": []string{reg}},
	} {
		if code, v := s.notification("POST", body, ""); code != 400 || v["error"] == nil {
			t.Errorf("/gcm/notification %s: %d %v, want 400", name, code, v)
		}
	}

	code, b = s.send(`{"to":"` + reg + `","data":` + escapedData + `}`)
	var ok struct {
		Success int
		Results []struct {
			MessageID string `json:"message_id"`
		}
	}
	if code != 200 || json.Unmarshal(b, &ok) != nil || ok.Success != 1 {
		t.Fatalf("escaped data: %d %.300s", code, b)
	}
	dev := s.deviceConn(d)
	m := dev.expect(wait)
	data, _ := m.json["data"].(map[string]any)
	if m.str("message_id") != ok.Results[0].MessageID || data["k"] != strings.Repeat("A", 4000) || len(m.raw) > 4096+512 {
		t.Fatalf("device got %d bytes: %.300v", len(m.raw), m.json)
	}
}

// sendPlain posts a plain-text (form) body to /gcm/send.
func (s *server) sendPlain(form string) (int, []byte) {
	s.t.Helper()
	req, _ := http.NewRequest("POST", "https://"+s.Info.HTTPAddr+"/gcm/send", strings.NewReader(form))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded;charset=UTF-8")
	req.Header.Set("Authorization", "key="+s.APIKey)
	resp, err := s.http.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}
