package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"

	ccsdevice "github.com/ccsd/ccsd/device"
)

// notification calls the device-group API and decodes the JSON answer.
func (s *server) notification(method string, body any, query string) (int, map[string]any) {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, "https://"+s.Info.HTTPAddr+"/gcm/notification"+query, rd)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "key="+s.APIKey)
	req.Header.Set("project_id", s.Sender)
	resp, err := s.http.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	var v map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&v)
	return resp.StatusCode, v
}

// createGroup creates a group and returns its notification_key.
func (s *server) createGroup(name string, regs ...string) string {
	s.t.Helper()
	code, v := s.notification("POST", map[string]any{"operation": "create", "notification_key_name": name, "registration_ids": regs}, "")
	key, _ := v["notification_key"].(string)
	if code != 200 || key == "" {
		s.t.Fatalf("create group: %d %v", code, v)
	}
	return key
}

// send posts to the legacy /gcm/send endpoint.
func (s *server) send(body string) (int, []byte) {
	s.t.Helper()
	req, _ := http.NewRequest("POST", "https://"+s.Info.HTTPAddr+"/gcm/send", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "key="+s.APIKey)
	resp, err := s.http.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// user is one person's devices, all registered for one app. Each device
// client hands its messages to its inbox once it runs (s.runDevice).
type user struct {
	devs []device
	regs []string
	in   []*inbox
}

func (s *server) newUser(n int, app string) user {
	var u user
	for i := 0; i < n; i++ {
		in := newInbox(s.t)
		d := s.checkinWith(in)
		u.devs = append(u.devs, d)
		u.regs = append(u.regs, s.register(d, s.Sender, app))
		u.in = append(u.in, in)
	}
	return u
}

// TestGroupFanOutXMPP: an app server sends once to a notification_key and
// each of the user's three online devices gets it; the ack carries the
// group's counts.
func TestGroupFanOutXMPP(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	u := s.newUser(3, "com.example.mail")
	key := s.createGroup("user-1", u.regs...)
	for _, d := range u.devs {
		s.runDevice(d)
	}
	conns := u.in
	app := s.appServer()
	app.send(`{"to":"` + key + `","message_id":"g-1","data":{"subject":"hi"},"delivery_receipt_requested":true}`)
	ack := app.expect(wait)
	if ack.hasType || ack.str("message_type") != "ack" || ack.str("from") != key || ack.str("message_id") != "g-1" || ack.json["success"] != 3.0 || ack.json["failure"] != 0.0 {
		t.Fatalf("group ack: %v", ack.json)
	}
	if _, ok := ack.json["failed_registration_ids"]; ok {
		t.Fatalf("full success carries failed_registration_ids: %v", ack.json)
	}
	for i, c := range conns {
		m := c.expect(wait)
		if m.str("message_id") != "g-1" || m.str("to") != u.regs[i] || m.str("notification_key") != key || m.str("from") != s.Sender {
			t.Fatalf("device %d got %v", i, m.json)
		}
	}
	// One receipt per member registration.
	got := map[string]bool{}
	for range conns {
		r := app.expect(wait)
		data, _ := r.json["data"].(map[string]any)
		got[data["device_registration_id"].(string)] = true
	}
	for _, reg := range u.regs {
		if !got[reg] {
			t.Errorf("no receipt for %s", reg)
		}
	}
}

// TestGroupPartialAndTotalFailure: members unregistered after joining stay
// in the group and are reported in failed_registration_ids, over XMPP and
// HTTP; when no member can receive, HTTP answers 503 with no body.
func TestGroupPartialAndTotalFailure(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	u := s.newUser(3, "com.example")
	key := s.createGroup("user-2", u.regs...)
	s.unregister(u.devs[1], s.Sender, "com.example")
	s.unregister(u.devs[2], s.Sender, "com.example")

	app := s.appServer()
	app.send(`{"to":"` + key + `","message_id":"p-1"}`)
	ack := app.expect(wait)
	failed, _ := ack.json["failed_registration_ids"].([]any)
	if ack.json["success"] != 1.0 || ack.json["failure"] != 2.0 || len(failed) != 2 {
		t.Fatalf("partial ack: %v", ack.json)
	}
	ids := []string{failed[0].(string), failed[1].(string)}
	sort.Strings(ids)
	want := []string{u.regs[1], u.regs[2]}
	sort.Strings(want)
	if ids[0] != want[0] || ids[1] != want[1] {
		t.Fatalf("failed_registration_ids %v, want %v", ids, want)
	}

	code, body := s.send(`{"to":"` + key + `","data":{"k":"v"}}`)
	var v struct {
		Success, Failure int
		Failed           []string `json:"failed_registration_ids"`
	}
	if code != 200 || json.Unmarshal(body, &v) != nil || v.Success != 1 || v.Failure != 2 || len(v.Failed) != 2 {
		t.Fatalf("HTTP partial: %d %s", code, body)
	}
	if bytes.Contains(body, []byte("multicast_id")) {
		t.Fatalf("a group answer has no multicast_id: %s", body)
	}

	s.unregister(u.devs[0], s.Sender, "com.example")
	code, body = s.send(`{"to":"` + key + `","data":{"k":"v"}}`)
	if code != 503 || len(body) != 0 {
		t.Fatalf("HTTP total failure: %d %q, want 503 and no body", code, body)
	}
	app.send(`{"to":"` + key + `","message_id":"p-2"}`)
	if ack := app.expect(wait); ack.json["success"] != 0.0 || ack.json["failure"] != 3.0 {
		t.Fatalf("XMPP total failure: %v", ack.json)
	}
	// The live member had two messages queued; unregistering it dropped
	// them, so its next session gets nothing before a marker sent to
	// another app of the device (one queue per device, in order).
	marker := s.register(u.devs[0], s.Sender, "com.example.marker")
	dev := s.deviceConn(u.devs[0])
	if got := downMarker(t, app, dev, marker); len(got) != 0 {
		t.Fatalf("the unregistered member's device got %s", msgIDs(got))
	}
}

// TestDeviceToGroupAndDismissal: a device writes to its user's key; the
// other two devices get it from the key, the sender's own device does not.
// A dismissal (same collapse_key) replaces the unsent notification in an
// offline device's queue, so on reconnect it receives only the dismissal.
func TestDeviceToGroupAndDismissal(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	u := s.newUser(3, "com.example.chat")
	key := s.createGroup("user-3", u.regs...)
	phone, tablet := s.deviceConn(u.devs[0]), s.deviceConn(u.devs[1])
	// devs[2] (a laptop) is offline.

	app := s.appServer()
	app.send(`{"to":"` + key + `","message_id":"n-1","collapse_key":"thread-9","data":{"notify":"new message"}}`)
	app.expect(wait)
	phone.expect(wait)
	tablet.expect(wait)
	phone.ack("n-1")
	tablet.ack("n-1")

	// The user reads it on the phone: the phone tells the group.
	phone.send(`{"to":"` + key + `","category":"com.example.chat","message_id":"d-1","collapse_key":"thread-9","data":{"dismiss":"thread-9"}}`)
	if a := phone.expect(wait); a.str("message_type") != "ack" || a.str("message_id") != "d-1" {
		t.Fatalf("phone's ack: %v", a.json)
	}
	m := tablet.expect(wait)
	if m.str("message_id") != "d-1" || m.str("from") != key || m.str("notification_key") != key || m.str("to") != u.regs[1] {
		t.Fatalf("tablet got %v", m.json)
	}
	if got := downMarker(t, app, phone, u.regs[0]); len(got) != 0 { // not back to the sender
		t.Fatalf("the phone got %s", msgIDs(got))
	}

	laptop := s.deviceConn(u.devs[2])
	if got := downMarker(t, app, laptop, u.regs[2]); msgIDs(got) != "d-1" {
		t.Fatalf("laptop got %q, want only the dismissal", msgIDs(got))
	}

	// A device outside the group cannot write to it.
	other, _, _ := s.onlineDeviceClient(s.Sender, "com.example.chat")
	err := other.upstream(t).send(ccsdevice.Upstream{NotificationKey: key, Category: "com.example.chat", MessageID: "x-1"})
	if code := nackCode(t, err); code != "BAD_REGISTRATION" {
		t.Fatalf("non-member to key: %v", err)
	}
}

// TestGroupsSurviveSIGKILL: groups created before a crash are intact after
// the restart.
func TestGroupsSurviveSIGKILL(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	u := s.newUser(2, "com.example")
	key := s.createGroup("user-4", u.regs...)
	s.Kill()
	s.restart()
	code, v := s.notification("GET", nil, "?notification_key_name=user-4")
	if code != 200 || v["notification_key"] != key {
		t.Fatalf("after restart: %d %v", code, v)
	}
	app := s.appServer()
	app.send(`{"to":"` + key + `","message_id":"k-1"}`)
	if ack := app.expect(wait); ack.json["success"] != 2.0 {
		t.Fatalf("send after restart: %v", ack.json)
	}
}

// TestLegacyHTTPSend: /gcm/send multicast with per-result errors.
func TestLegacyHTTPSend(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	u := s.newUser(2, "com.example")
	s.unregister(u.devs[1], s.Sender, "com.example")
	code, body := s.send(`{"registration_ids":["` + u.regs[0] + `","` + u.regs[1] + `","bogus"],"data":{"k":"v"},"time_to_live":60}`)
	var v struct {
		MulticastID int64 `json:"multicast_id"`
		Success     int
		Failure     int
		Results     []struct {
			MessageID string `json:"message_id"`
			Error     string `json:"error"`
		}
	}
	if code != 200 || json.Unmarshal(body, &v) != nil {
		t.Fatalf("send: %d %s", code, body)
	}
	if v.Success != 1 || v.Failure != 2 || len(v.Results) != 3 || v.Results[0].MessageID == "" || v.Results[1].Error != "NotRegistered" || v.Results[2].Error != "InvalidRegistration" {
		t.Fatalf("results: %s", body)
	}
	s.runDevice(u.devs[0])
	if m := u.in[0].expect(wait); m.str("message_id") != v.Results[0].MessageID {
		t.Fatalf("device got %v", m.json)
	}
	if code, _ := s.send(`{"registration_ids":["x"],"time_to_live":"soon"}`); code != 400 {
		t.Fatalf("bad field type: %d, want 400", code)
	}
	req, _ := http.NewRequest("POST", "https://"+s.Info.HTTPAddr+"/gcm/send", strings.NewReader(`{"registration_ids":["x"]}`))
	req.Header.Set("Authorization", "key=wrong")
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("bad key: %d", resp.StatusCode)
	}
}
