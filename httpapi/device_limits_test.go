package httpapi

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ccsd/ccsd/auth"
	"github.com/ccsd/ccsd/internal/limit"
)

// clientFrom returns a client of e's TLS server whose connections come from
// the local address ip (any 127/8 address is this host's loopback).
func (e *env) clientFrom(ip string) *http.Client {
	tr := e.srv.Client().Transport.(*http.Transport).Clone()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	tr.DialContext = d.DialContext
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// post sends a POST with c and returns the response (body read) and body.
func (e *env) post(t *testing.T, c *http.Client, path, ctype, body, authz string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), "POST", e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// wantRetryAfter checks a 429's Retry-After: whole seconds, at least 1.
func wantRetryAfter(t *testing.T, what string, resp *http.Response) {
	t.Helper()
	if n, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || n < 1 {
		t.Errorf("%s: Retry-After %q, want whole seconds >= 1", what, resp.Header.Get("Retry-After"))
	}
}

// TestCheckinRateLimitPerAddress: past its burst one source address gets
// 429 with Retry-After and no device is created; another address still
// checks in.
func TestCheckinRateLimitPerAddress(t *testing.T) {
	e := newEnvWith(t, auth.DeviceLimits{}, func(c *Config) {
		c.CheckinLimit = limit.NewRate(3, time.Hour, 0)
	})
	first := e.clientFrom("127.0.0.1")
	for i := range 3 {
		if resp, body := e.post(t, first, "/checkin", "", "", ""); resp.StatusCode != 200 {
			t.Fatalf("checkin %d within the burst: %d %q", i, resp.StatusCode, body)
		}
	}
	resp, body := e.post(t, first, "/checkin", "application/json", "{}", "")
	wantJSONError(t, "checkin past the burst", resp.StatusCode, resp.Header.Get("Content-Type"), body, http.StatusTooManyRequests)
	wantRetryAfter(t, "checkin past the burst", resp)
	if strings.Contains(body, "android_id") {
		t.Errorf("a refused checkin created a device: %q", body)
	}
	if resp, body := e.post(t, e.clientFrom("127.0.0.2"), "/checkin", "", "", ""); resp.StatusCode != 200 {
		t.Errorf("checkin from another address: %d %q", resp.StatusCode, body)
	}
	if st := e.api.Stats(); st != (Stats{CheckinRefused: 1}) {
		t.Errorf("stats %+v, want the one refused checkin", st)
	}
}

// TestRegisterRateLimitPerAddress: register3 past its burst is 429
// Error=SERVICE_NOT_AVAILABLE (what GCM clients back off and retry on)
// with Retry-After; another address is not limited.
func TestRegisterRateLimitPerAddress(t *testing.T) {
	e := newEnvWith(t, auth.DeviceLimits{}, func(c *Config) {
		c.RegisterLimit = limit.NewRate(3, time.Hour, 0)
	})
	snd, _, _ := e.senders.Create("")
	id, tok := e.checkin(t)
	authz := "AidLogin " + id + ":" + tok
	form := func(app string) string { return url.Values{"app": {app}, "sender": {snd.ID}}.Encode() }
	first := e.clientFrom("127.0.0.1")
	for i := range 3 {
		resp, body := e.post(t, first, "/c2dm/register3", "application/x-www-form-urlencoded", form("a"+strconv.Itoa(i)), authz)
		if resp.StatusCode != 200 || !strings.HasPrefix(body, "token=") {
			t.Fatalf("register %d within the burst: %d %q", i, resp.StatusCode, body)
		}
	}
	resp, body := e.post(t, first, "/c2dm/register3", "application/x-www-form-urlencoded", form("a3"), authz)
	if resp.StatusCode != http.StatusTooManyRequests || body != "Error=SERVICE_NOT_AVAILABLE" {
		t.Errorf("register past the burst: %d %q, want 429 Error=SERVICE_NOT_AVAILABLE", resp.StatusCode, body)
	}
	wantRetryAfter(t, "register past the burst", resp)
	if _, err := e.db.FindRegistration(id, snd.ID, "a3"); err == nil {
		t.Error("a refused register3 registered the app")
	}
	resp, body = e.post(t, e.clientFrom("127.0.0.2"), "/c2dm/register3", "application/x-www-form-urlencoded", form("a3"), authz)
	if resp.StatusCode != 200 || !strings.HasPrefix(body, "token=") {
		t.Errorf("register from another address: %d %q", resp.StatusCode, body)
	}
	if st := e.api.Stats(); st != (Stats{RegisterRefused: 1}) {
		t.Errorf("stats %+v, want the one refused register3", st)
	}
}

// TestRegisterTooManyRegistrations: past the device's cap a new app gets
// 400 Error=TOO_MANY_REGISTRATIONS; an app already registered still gets
// its token, and another device is not affected.
func TestRegisterTooManyRegistrations(t *testing.T) {
	e := newEnvWith(t, auth.DeviceLimits{MaxRegistrations: 3}, nil)
	snd, _, _ := e.senders.Create("")
	id, tok := e.checkin(t)
	authz := "AidLogin " + id + ":" + tok
	var first string
	for i := range 3 {
		status, body := e.register(t, authz, url.Values{"app": {"app." + strconv.Itoa(i)}, "sender": {snd.ID}})
		if status != 200 {
			t.Fatalf("app %d: %d %q", i, status, body)
		}
		if i == 0 {
			first = body
		}
	}
	if status, body := e.register(t, authz, url.Values{"app": {"app.3"}, "sender": {snd.ID}}); status != 400 || body != "Error=TOO_MANY_REGISTRATIONS" {
		t.Errorf("app past the cap: %d %q, want 400 Error=TOO_MANY_REGISTRATIONS", status, body)
	}
	if status, body := e.register(t, authz, url.Values{"app": {"app.0"}, "sender": {snd.ID}}); status != 200 || body != first {
		t.Errorf("re-register at the cap: %d %q, want %q", status, body, first)
	}
	other, otok := e.checkin(t)
	if status, body := e.register(t, "AidLogin "+other+":"+otok, url.Values{"app": {"app.3"}, "sender": {snd.ID}}); status != 200 {
		t.Errorf("another device: %d %q", status, body)
	}
}

// TestRegisterFieldBounds: every register3 field (known or not) is at most
// 512 bytes, at most 64 fields, and credentials at most 256 bytes each;
// past that the request is refused in GCM's terms and registers nothing.
func TestRegisterFieldBounds(t *testing.T) {
	e := newEnv(t)
	snd, _, _ := e.senders.Create("")
	id, tok := e.checkin(t)
	authz := "AidLogin " + id + ":" + tok
	base := func() url.Values { return url.Values{"app": {"com.example"}, "sender": {snd.ID}} }
	with := func(k, v string) url.Values { f := base(); f.Set(k, v); return f }
	many := base()
	for i := range 63 {
		many.Set("x"+strconv.Itoa(i), "1")
	}
	cases := []struct {
		name   string
		authz  string
		form   url.Values
		status int
		body   string
	}{
		{"long sender", authz, with("sender", strings.Repeat("1", 513)), 400, "Error=INVALID_PARAMETERS"},
		{"long extra field", authz, with("X-subtype", strings.Repeat("x", 513)), 400, "Error=INVALID_PARAMETERS"},
		{"long field name", authz, with(strings.Repeat("k", 513), "v"), 400, "Error=INVALID_PARAMETERS"},
		{"long app", authz, with("app", strings.Repeat("a", 256)), 400, "Error=INVALID_PARAMETERS"},
		{"too many fields", authz, many, 400, "Error=INVALID_PARAMETERS"},
		{"long android id", "AidLogin " + strings.Repeat("1", 257) + ":" + tok, base(), 401, "Error=AUTHENTICATION_FAILED"},
		{"long token", "AidLogin " + id + ":" + strings.Repeat("t", 257), base(), 401, "Error=AUTHENTICATION_FAILED"},
	}
	for _, c := range cases {
		if status, body := e.register(t, c.authz, c.form); status != c.status || body != c.body {
			t.Errorf("%s: %d %q, want %d %q", c.name, status, body, c.status, c.body)
		}
	}
	if _, err := e.db.FindRegistration(id, snd.ID, "com.example"); err == nil {
		t.Fatal("a refused request registered the app")
	}
	// At the bounds a request is fine.
	ok := with("X-subtype", strings.Repeat("x", 512))
	delete(many, "x62")
	for _, f := range []url.Values{ok, many} {
		if status, body := e.register(t, authz, f); status != 200 || !strings.HasPrefix(body, "token=") {
			t.Errorf("request at the bounds: %d %q", status, body)
		}
	}
}
