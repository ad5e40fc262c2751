package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/ccsd/ccsd/auth"
	"github.com/ccsd/ccsd/store"
	"github.com/ccsd/ccsd/store/bolt"
)

// env is a public API served over TLS on 127.0.0.1, backed by a real store.
type env struct {
	srv     *httptest.Server
	api     *API
	db      *bolt.DB
	senders *auth.Senders
	devices *auth.Devices
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvWith(t, auth.DeviceLimits{MaxRegistrations: auth.DefaultMaxRegistrations}, nil)
}

// newEnvWith is newEnv with the given device limits and, if configure is
// not nil, a Config it may change.
func newEnvWith(t *testing.T, limits auth.DeviceLimits, configure func(*Config)) *env {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "ccsd.db"), bolt.Options{})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	e := &env{db: db, senders: auth.NewSenders(db), devices: auth.NewDevicesWithLimits(db, limits)}
	cfg := Config{Devices: e.devices, Logger: zerolog.New(zerolog.NewTestWriter(t))}
	if configure != nil {
		configure(&cfg)
	}
	e.api = New(cfg)
	e.srv = httptest.NewTLSServer(e.api)
	t.Cleanup(e.srv.Close)
	return e
}

// do sends a request and returns status, content type and body.
func (e *env) do(t *testing.T, method, path, contentType, body string, header ...string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
}

// checkin runs POST /checkin and returns the new device's credentials.
func (e *env) checkin(t *testing.T) (string, string) {
	t.Helper()
	status, _, body := e.do(t, "POST", "/checkin", "", "")
	if status != http.StatusOK {
		t.Fatalf("checkin: %d %s", status, body)
	}
	var r checkinResponse
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatalf("checkin body %q: %v", body, err)
	}
	return r.AndroidID, r.SecurityToken
}

// register posts form to /c2dm/register3 with the given Authorization.
func (e *env) register(t *testing.T, authz string, form url.Values) (int, string) {
	t.Helper()
	var h []string
	if authz != "" {
		h = []string{"Authorization", authz}
	}
	status, ctype, body := e.do(t, "POST", "/c2dm/register3", "application/x-www-form-urlencoded", form.Encode(), h...)
	if !strings.HasPrefix(ctype, "text/plain") {
		t.Errorf("register3 answered Content-Type %q, want text/plain", ctype)
	}
	return status, body
}

func wantJSONError(t *testing.T, what string, status int, ctype, body string, wantStatus int) {
	t.Helper()
	if status != wantStatus {
		t.Errorf("%s: status %d, want %d (body %q)", what, status, wantStatus, body)
	}
	if !strings.HasPrefix(ctype, "application/json") {
		t.Errorf("%s: Content-Type %q, want application/json", what, ctype)
	}
	var eb errorBody
	if err := json.Unmarshal([]byte(body), &eb); err != nil || eb.Error == "" {
		t.Errorf("%s: body %q is not {\"error\": ...}", what, body)
	}
}

func TestCheckin(t *testing.T) {
	e := newEnv(t)
	for _, body := range []string{"", "{}", "  {\"ignored\": [1, 2]}\n"} {
		status, ctype, got := e.do(t, "POST", "/checkin", "application/json", body)
		if status != http.StatusOK || !strings.HasPrefix(ctype, "application/json") {
			t.Fatalf("checkin(%q) = %d %q %q", body, status, ctype, got)
		}
		var r checkinResponse
		if err := json.Unmarshal([]byte(got), &r); err != nil || r.AndroidID == "" || r.SecurityToken == "" {
			t.Fatalf("checkin(%q) body %q", body, got)
		}
		// The credentials are real: the device can log in with them.
		if id, err := e.devices.Authenticate(context.Background(), r.AndroidID, r.SecurityToken); err != nil || id != r.AndroidID {
			t.Errorf("new device cannot authenticate: %v", err)
		}
	}
	a1, _ := e.checkin(t)
	a2, _ := e.checkin(t)
	if a1 == a2 {
		t.Errorf("two checkins gave the same android id %s", a1)
	}

	for _, bad := range []string{"[]", "null", "nope", "{", `{"a":1}x`, `"str"`} {
		status, ctype, body := e.do(t, "POST", "/checkin", "application/json", bad)
		wantJSONError(t, "checkin body "+bad, status, ctype, body, http.StatusBadRequest)
	}
	status, ctype, body := e.do(t, "POST", "/checkin", "application/json", `{"pad":"`+strings.Repeat("x", DefaultMaxBodyBytes)+`"}`)
	wantJSONError(t, "checkin too large", status, ctype, body, http.StatusRequestEntityTooLarge)

	for _, m := range []string{"GET", "PUT", "DELETE"} {
		status, ctype, body := e.do(t, m, "/checkin", "", "")
		wantJSONError(t, m+" /checkin", status, ctype, body, http.StatusMethodNotAllowed)
	}
}

func TestCheckinMethodNotAllowedHasAllow(t *testing.T) {
	e := newEnv(t)
	resp, err := e.srv.Client().Get(e.srv.URL + "/checkin")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || !strings.Contains(resp.Header.Get("Allow"), "POST") {
		t.Errorf("GET /checkin: %d, Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
}

var tokenRe = regexp.MustCompile(`^token=[A-Za-z0-9_-]{22}:APA91b[A-Za-z0-9_-]+$`)

func TestRegister3(t *testing.T) {
	e := newEnv(t)
	snd, _, err := e.senders.Create("")
	if err != nil {
		t.Fatal(err)
	}
	id, tok := e.checkin(t)
	authz := "AidLogin " + id + ":" + tok
	form := url.Values{"app": {"com.example.chat"}, "sender": {snd.ID}}

	status, body := e.register(t, authz, form)
	if status != http.StatusOK || !tokenRe.MatchString(body) {
		t.Fatalf("register = %d %q", status, body)
	}
	regID := strings.TrimPrefix(body, "token=")
	reg, err := e.db.Registration(regID)
	if err != nil || reg.DeviceID != id || reg.SenderID != snd.ID || reg.App != "com.example.chat" {
		t.Fatalf("stored registration = %+v, %v", reg, err)
	}

	// Same (device, sender, app) again, with device given and the scheme in
	// another case: same token.
	form2 := url.Values{"app": {"com.example.chat"}, "sender": {snd.ID}, "device": {id}}
	if status, body := e.register(t, "aidlogin "+id+":"+tok, form2); status != http.StatusOK || body != "token="+regID {
		t.Errorf("re-register = %d %q, want the same token", status, body)
	}

	// Unregister with delete=true, then delete=1 (idempotent).
	for _, v := range []string{"true", "1", "TRUE"} {
		del := url.Values{"app": {"com.example.chat"}, "sender": {snd.ID}, "delete": {v}}
		if status, body := e.register(t, authz, del); status != http.StatusOK || body != "deleted=com.example.chat" {
			t.Errorf("delete=%s = %d %q", v, status, body)
		}
	}
	if _, err := e.db.Registration(regID); !errors.Is(err, store.ErrUnregistered) {
		t.Errorf("registration after delete: %v, want ErrUnregistered", err)
	}
	status, body = e.register(t, authz, form)
	if status != http.StatusOK || body == "token="+regID {
		t.Errorf("register after delete = %d %q, want a new token", status, body)
	}
	// Explicit delete=false registers.
	f := url.Values{"app": {"com.example.chat"}, "sender": {snd.ID}, "delete": {"false"}}
	if s, b := e.register(t, authz, f); s != http.StatusOK || b != body {
		t.Errorf("delete=false = %d %q, want %q", s, b, body)
	}
}

func TestRegister3Errors(t *testing.T) {
	e := newEnv(t)
	snd, _, _ := e.senders.Create("")
	revoked, _, _ := e.senders.Create("")
	if err := e.senders.Revoke(revoked.ID); err != nil {
		t.Fatal(err)
	}
	id, tok := e.checkin(t)
	other, _ := e.checkin(t)
	good := "AidLogin " + id + ":" + tok
	form := func(kv ...string) url.Values {
		v := url.Values{}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v
	}
	ok := form("app", "a.b", "sender", snd.ID)
	cases := []struct {
		name   string
		authz  string
		form   url.Values
		status int
		body   string
	}{
		{"no authorization", "", ok, 401, "Error=AUTHENTICATION_FAILED"},
		{"wrong scheme", "Bearer " + id + ":" + tok, ok, 401, "Error=AUTHENTICATION_FAILED"},
		{"no colon", "AidLogin " + id + tok, ok, 401, "Error=AUTHENTICATION_FAILED"},
		{"empty token", "AidLogin " + id + ":", ok, 401, "Error=AUTHENTICATION_FAILED"},
		{"wrong token", "AidLogin " + id + ":" + tok + "x", ok, 401, "Error=AUTHENTICATION_FAILED"},
		{"unknown device", "AidLogin 12345:" + tok, ok, 401, "Error=AUTHENTICATION_FAILED"},
		{"another device's id in form", good, form("app", "a.b", "sender", snd.ID, "device", other), 401, "Error=AUTHENTICATION_FAILED"},
		{"missing app", good, form("sender", snd.ID), 400, "Error=INVALID_PARAMETERS"},
		{"missing sender", good, form("app", "a.b"), 400, "Error=INVALID_PARAMETERS"},
		{"missing both", good, form(), 400, "Error=INVALID_PARAMETERS"},
		{"bad app", good, form("app", "a b", "sender", snd.ID), 400, "Error=INVALID_PARAMETERS"},
		{"bad delete", good, form("app", "a.b", "sender", snd.ID, "delete", "maybe"), 400, "Error=INVALID_PARAMETERS"},
		{"delete without sender", good, form("app", "a.b", "delete", "true"), 400, "Error=INVALID_PARAMETERS"},
		{"unknown sender", good, form("app", "a.b", "sender", "123456789012"), 400, "Error=INVALID_SENDER"},
		{"revoked sender", good, form("app", "a.b", "sender", revoked.ID), 400, "Error=INVALID_SENDER"},
		{"several senders", good, form("app", "a.b", "sender", snd.ID+","+revoked.ID), 400, "Error=INVALID_SENDER"},
	}
	for _, c := range cases {
		status, body := e.register(t, c.authz, c.form)
		if status != c.status || body != c.body {
			t.Errorf("%s: %d %q, want %d %q", c.name, status, body, c.status, c.body)
		}
	}

	// A body that is not a form: no parameters.
	status, _, body := e.do(t, "POST", "/c2dm/register3", "application/json", `{"app":"a.b"}`, "Authorization", good)
	if status != 400 || body != "Error=INVALID_PARAMETERS" {
		t.Errorf("JSON body: %d %q", status, body)
	}
	// A malformed form body.
	status, _, body = e.do(t, "POST", "/c2dm/register3", "application/x-www-form-urlencoded", "app=%zz", "Authorization", good)
	if status != 400 || body != "Error=INVALID_PARAMETERS" {
		t.Errorf("malformed form: %d %q", status, body)
	}
	// Too large, as a form and as another content type.
	big := "app=a.b&sender=" + snd.ID + "&pad=" + strings.Repeat("x", DefaultMaxBodyBytes)
	for _, ct := range []string{"application/x-www-form-urlencoded", "application/octet-stream"} {
		status, _, body = e.do(t, "POST", "/c2dm/register3", ct, big, "Authorization", good)
		if status != http.StatusRequestEntityTooLarge || body != "Error=INVALID_PARAMETERS" {
			t.Errorf("too large (%s): %d %q", ct, status, body)
		}
	}
	// Wrong method: JSON 405.
	status, ctype, body := e.do(t, "GET", "/c2dm/register3", "", "")
	wantJSONError(t, "GET register3", status, ctype, body, http.StatusMethodNotAllowed)
	// Nothing was registered by all of the above.
	if _, err := e.db.FindRegistration(id, snd.ID, "a.b"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a failed request registered something: %v", err)
	}
}

func TestInternalErrorsAreServiceNotAvailable(t *testing.T) {
	e := newEnv(t)
	snd, _, _ := e.senders.Create("")
	id, tok := e.checkin(t)
	e.db.Close()

	status, body := e.register(t, "AidLogin "+id+":"+tok, url.Values{"app": {"a"}, "sender": {snd.ID}})
	if status != http.StatusInternalServerError || body != "Error=SERVICE_NOT_AVAILABLE" {
		t.Errorf("register on closed store: %d %q", status, body)
	}
	s, ctype, b := e.do(t, "POST", "/checkin", "", "")
	wantJSONError(t, "checkin on closed store", s, ctype, b, http.StatusInternalServerError)
}

// failingDevices authenticates everyone and fails every other call.
type failingDevices struct{ err error }

func (f failingDevices) Checkin(context.Context) (string, string, error) { return "", "", f.err }
func (f failingDevices) Authenticate(_ context.Context, u, _ string) (string, error) {
	return u, nil
}
func (f failingDevices) Register(context.Context, string, string, string) (string, error) {
	return "", f.err
}
func (f failingDevices) Unregister(context.Context, string, string, string) error { return f.err }

func TestUnregisterInternalError(t *testing.T) {
	h := New(Config{Devices: failingDevices{errors.New("disk on fire")}, Logger: zerolog.Nop()})
	req := httptest.NewRequest("POST", "/c2dm/register3", strings.NewReader("app=a&sender=1&delete=true"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "AidLogin 1:x")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 500 || rec.Body.String() != "Error=SERVICE_NOT_AVAILABLE" {
		t.Errorf("unregister failure: %d %q", rec.Code, rec.Body.String())
	}
}

func TestUnknownPathAndMountedHandlers(t *testing.T) {
	e := newEnv(t)
	status, ctype, body := e.do(t, "GET", "/nope", "", "")
	wantJSONError(t, "unknown path", status, ctype, body, http.StatusNotFound)

	e.api.Handle("POST /gcm/send", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]int{"success": 1})
	}))
	status, _, body = e.do(t, "POST", "/gcm/send", "application/json", "{}")
	if status != 200 || strings.TrimSpace(body) != `{"success":1}` {
		t.Errorf("mounted handler: %d %q", status, body)
	}
	status, ctype, body = e.do(t, "GET", "/gcm/send", "", "")
	wantJSONError(t, "GET mounted POST handler", status, ctype, body, http.StatusMethodNotAllowed)
}

func TestParseAidLogin(t *testing.T) {
	cases := []struct {
		in         string
		user, pass string
		ok         bool
	}{
		{"AidLogin 1:abc", "1", "abc", true},
		{"aidlogin  1:abc ", "1", "abc", true},
		{"AidLogin 1:a:b", "1", "a:b", true},
		{"AidLogin 1", "", "", false},
		{"AidLogin :abc", "", "", false},
		{"AidLogin 1:", "", "", false},
		{"AidLogin", "", "", false},
		{"Basic 1:abc", "", "", false},
		{"", "", "", false},
	}
	for _, c := range cases {
		u, p, ok := parseAidLogin(c.in)
		if u != c.user || p != c.pass || ok != c.ok {
			t.Errorf("parseAidLogin(%q) = %q, %q, %v", c.in, u, p, ok)
		}
	}
}
