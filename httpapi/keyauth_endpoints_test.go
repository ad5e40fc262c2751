package httpapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/ccsd/ccsd/auth"
	"github.com/ccsd/ccsd/groups"
)

// TestAPIKeyHeaderFormsOnBothEndpoints: /gcm/send and /gcm/notification
// read "Authorization: key=API_KEY" with one parser, so every form of the
// header gets the same verdict on both. The scheme's case and white space
// around "=" used to work only on /gcm/notification (401 on /gcm/send).
func TestAPIKeyHeaderFormsOnBothEndpoints(t *testing.T) {
	fx := newAppFixture(t)
	key := fx.key
	api := New(Config{Devices: auth.NewDevices(fx.db), Logger: zerolog.Nop()})
	NewSendHandler(nopRouter{}, fx.senders, nil, zerolog.Nop()).Mount(api)
	NewNotificationHandler(groups.New(fx.db, 0), fx.senders, nil, zerolog.Nop()).Mount(api)
	ts := httptest.NewTLSServer(api)
	t.Cleanup(ts.Close)

	call := func(path, authz string) (int, string, http.Header) {
		t.Helper()
		req, _ := http.NewRequest("POST", ts.URL+path, strings.NewReader(`{"to":"REG"}`))
		if path != "/gcm/send" {
			req, _ = http.NewRequest("GET", ts.URL+path, nil)
			req.Header.Set("project_id", fx.sender)
		}
		req.Header.Set("Content-Type", "application/json")
		if authz != "" {
			req.Header["Authorization"] = []string{authz} // as written
		}
		resp, err := ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var v struct{ Error string }
		_ = json.NewDecoder(resp.Body).Decode(&v)
		return resp.StatusCode, v.Error, resp.Header
	}
	const notification = "/gcm/notification?notification_key_name=none"
	accepted := []string{"key=" + key, "Key=" + key, "KEY=" + key, "key = " + key, "key= " + key,
		"key =" + key, "kEy\t=\t" + key, "  key=" + key + "  "}
	for _, h := range accepted {
		if code, msg, _ := call("/gcm/send", h); code != http.StatusOK {
			t.Errorf("/gcm/send with %q: %d %q, want 200", h, code, msg)
		}
		// Authenticated: the lookup runs and finds no group.
		if code, msg, _ := call(notification, h); code != http.StatusNotFound || msg != "notification_key not found" {
			t.Errorf("/gcm/notification with %q: %d %q, want 404 notification_key not found", h, code, msg)
		}
	}
	refused := []string{"", "Bearer " + key, "key " + key, "key:" + key, key, "keys=" + key, "key=", "key=   "}
	for _, h := range refused {
		for _, path := range []string{"/gcm/send", notification} {
			code, msg, hdr := call(path, h)
			if code != http.StatusUnauthorized || msg != "missing Authorization: key=API_KEY header" {
				t.Errorf("%s with %q: %d %q, want 401 missing Authorization", path, h, code, msg)
			}
			if path == notification && hdr.Get("Cache-Control") != "no-store" {
				t.Errorf("%s: Cache-Control %q, want no-store", path, hdr.Get("Cache-Control"))
			}
		}
	}
	// A wrong key is refused on both, each naming what it checked.
	if code, msg, _ := call("/gcm/send", "key=wrong"); code != http.StatusUnauthorized || msg != "the API key is not valid" {
		t.Errorf("/gcm/send wrong key: %d %q", code, msg)
	}
	if code, msg, _ := call(notification, "Key = wrong"); code != http.StatusUnauthorized || msg != "the API key is not valid for this project_id" {
		t.Errorf("/gcm/notification wrong key: %d %q", code, msg)
	}
}
