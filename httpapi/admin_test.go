package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/ccsd/ccsd/auth"
	"github.com/ccsd/ccsd/store/bolt"
)

// adminEnv is the admin handler on a plain-HTTP loopback server, backed by a
// real store.
type adminEnv struct {
	srv     *httptest.Server
	db      *bolt.DB
	senders *auth.Senders
	health  error
	ready   error
}

func newAdminEnv(t *testing.T) *adminEnv {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "ccsd.db"), bolt.Options{})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	e := &adminEnv{db: db, senders: auth.NewSenders(db)}
	h := NewAdmin(AdminConfig{
		Senders:  e.senders,
		Logger:   zerolog.New(zerolog.NewTestWriter(t)),
		Health:   func(context.Context) error { return e.health },
		Ready:    func(context.Context) error { return e.ready },
		Instance: "inst-1",
	})
	e.srv = httptest.NewServer(h)
	t.Cleanup(e.srv.Close)
	return e
}

func (e *adminEnv) do(t *testing.T, method, path, body string, header ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		if header[i] == "Host" { // net/http sends req.Host, not a Host header
			req.Host = header[i+1]
			continue
		}
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func (e *adminEnv) wantError(t *testing.T, what, method, path, body string, status int, header ...string) {
	t.Helper()
	resp, got := e.do(t, method, path, body, header...)
	wantJSONError(t, what, resp.StatusCode, resp.Header.Get("Content-Type"), got, status)
}

var adminSenderIDRe = regexp.MustCompile(`^[1-9][0-9]{11}$`)

func TestAdminCreateSender(t *testing.T) {
	e := newAdminEnv(t)
	ctx := context.Background()
	for _, body := range []string{"", "{}", `{"id": ""}`} {
		resp, got := e.do(t, "POST", "/admin/senders", body)
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("create(%q): %d %q", body, resp.StatusCode, got)
		}
		var r CreateSenderResponse
		if err := json.Unmarshal([]byte(got), &r); err != nil {
			t.Fatalf("create body %q: %v", got, err)
		}
		if !adminSenderIDRe.MatchString(r.SenderID) || !strings.HasPrefix(r.APIKey, "AIza") {
			t.Errorf("create(%q) = %+v", body, r)
		}
		if resp.Header.Get("Location") != "/admin/senders/"+r.SenderID || resp.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("create headers: %v", resp.Header)
		}
		// The key works for an app server login.
		if _, err := e.senders.Authenticate(ctx, r.SenderID, r.APIKey); err != nil {
			t.Errorf("created key does not authenticate: %v", err)
		}
	}

	resp, got := e.do(t, "POST", "/admin/senders", `{"id": "my-app"}`)
	if resp.StatusCode != http.StatusCreated || !strings.Contains(got, `"sender_id":"my-app"`) {
		t.Fatalf("create my-app: %d %q", resp.StatusCode, got)
	}
	e.wantError(t, "duplicate id", "POST", "/admin/senders", `{"id": "my-app"}`, http.StatusConflict)
	e.wantError(t, "invalid id", "POST", "/admin/senders", `{"id": "a b"}`, http.StatusBadRequest)
	e.wantError(t, "unknown field", "POST", "/admin/senders", `{"name": "x"}`, http.StatusBadRequest)
	e.wantError(t, "not json", "POST", "/admin/senders", `id=x`, http.StatusBadRequest)
	e.wantError(t, "two objects", "POST", "/admin/senders", `{} {}`, http.StatusBadRequest)
	e.wantError(t, "wrong type", "POST", "/admin/senders", `{"id": 5}`, http.StatusBadRequest)
	e.wantError(t, "too large", "POST", "/admin/senders", `{"id":"`+strings.Repeat("1", DefaultMaxBodyBytes)+`"}`, http.StatusRequestEntityTooLarge)
	e.wantError(t, "wrong method", "DELETE", "/admin/senders", "", http.StatusMethodNotAllowed)
}

func TestAdminListGetRevoke(t *testing.T) {
	e := newAdminEnv(t)
	// An empty list is [], not null.
	resp, got := e.do(t, "GET", "/admin/senders", "")
	if resp.StatusCode != 200 || strings.TrimSpace(got) != "[]" {
		t.Fatalf("empty list: %d %q", resp.StatusCode, got)
	}
	a, keyA, _ := e.senders.Create("a")
	e.senders.Create("b")

	resp, got = e.do(t, "POST", "/admin/senders/a/revoke", "")
	if resp.StatusCode != 200 {
		t.Fatalf("revoke: %d %q", resp.StatusCode, got)
	}
	var one SenderJSON
	if err := json.Unmarshal([]byte(got), &one); err != nil || one.SenderID != "a" || !one.Revoked || one.Created.IsZero() {
		t.Errorf("revoke body %q: %+v %v", got, one, err)
	}
	if _, err := e.senders.Authenticate(context.Background(), a.ID, keyA); !errors.Is(err, auth.ErrBadCredentials) {
		t.Errorf("revoked sender still authenticates: %v", err)
	}
	e.wantError(t, "revoke unknown", "POST", "/admin/senders/nobody/revoke", "", http.StatusNotFound)
	e.wantError(t, "GET revoke", "GET", "/admin/senders/a/revoke", "", http.StatusMethodNotAllowed)

	resp, got = e.do(t, "GET", "/admin/senders", "")
	var list []SenderJSON
	if err := json.Unmarshal([]byte(got), &list); resp.StatusCode != 200 || err != nil {
		t.Fatalf("list: %d %q %v", resp.StatusCode, got, err)
	}
	if len(list) != 2 || list[0].SenderID != "a" || !list[0].Revoked || list[1].SenderID != "b" || list[1].Revoked {
		t.Errorf("list = %+v", list)
	}
	if strings.Contains(got, "key") || strings.Contains(got, "hash") {
		t.Errorf("list leaks key material: %s", got)
	}

	resp, got = e.do(t, "GET", "/admin/senders/b", "")
	if resp.StatusCode != 200 || !strings.Contains(got, `"sender_id":"b"`) || !strings.Contains(got, `"revoked":false`) {
		t.Errorf("get b: %d %q", resp.StatusCode, got)
	}
	e.wantError(t, "get unknown", "GET", "/admin/senders/zzz", "", http.StatusNotFound)
	e.wantError(t, "unknown path", "GET", "/admin/nothing", "", http.StatusNotFound)
}

func TestAdminHealthz(t *testing.T) {
	e := newAdminEnv(t)
	resp, got := e.do(t, "GET", "/healthz", "")
	if resp.StatusCode != 200 || strings.TrimSpace(got) != `{"status":"ok","instance":"inst-1"}` {
		t.Errorf("healthz: %d %q", resp.StatusCode, got)
	}
	e.health = errors.New("store closed")
	e.wantError(t, "unhealthy", "GET", "/healthz", "", http.StatusServiceUnavailable)
}

// TestAdminReadyz: 200 {"status":"ready"} when ready; 503 with the reason
// for each way of not being ready, while /healthz (liveness) stays 200.
func TestAdminReadyz(t *testing.T) {
	e := newAdminEnv(t)
	resp, got := e.do(t, "GET", "/readyz", "")
	if resp.StatusCode != 200 || strings.TrimSpace(got) != `{"status":"ready"}` {
		t.Errorf("ready: %d %q", resp.StatusCode, got)
	}
	for _, c := range []struct {
		err    error
		reason string
	}{
		{&NotReady{Reason: ReasonStarting}, "starting"},
		{&NotReady{Reason: ReasonDraining}, "draining"},
		{&NotReady{Reason: ReasonStore, Err: errors.New("store: commit: file too large")}, "store"},
		{fmt.Errorf("wrapped: %w", &NotReady{Reason: ReasonStore}), "store"},
		{errors.New("something else"), "error"},
	} {
		e.ready = c.err
		resp, got := e.do(t, "GET", "/readyz", "")
		wantJSONError(t, "readyz "+c.reason, resp.StatusCode, resp.Header.Get("Content-Type"), got, http.StatusServiceUnavailable)
		var r Readiness
		if err := json.Unmarshal([]byte(got), &r); err != nil || r.Status != "not ready" || r.Reason != c.reason || r.Error != c.err.Error() {
			t.Errorf("readyz %s: body %q", c.reason, got)
		}
		if resp, got := e.do(t, "GET", "/healthz", ""); resp.StatusCode != 200 {
			t.Errorf("healthz while not ready (%s): %d %q", c.reason, resp.StatusCode, got)
		}
	}
	e.wantError(t, "POST readyz", "POST", "/readyz", "", http.StatusMethodNotAllowed)
}

func TestAdminInternalError(t *testing.T) {
	e := newAdminEnv(t)
	e.db.Close()
	e.wantError(t, "list on closed store", "GET", "/admin/senders", "", http.StatusInternalServerError)
	e.wantError(t, "create on closed store", "POST", "/admin/senders", "", http.StatusInternalServerError)
	e.wantError(t, "revoke on closed store", "POST", "/admin/senders/x/revoke", "", http.StatusInternalServerError)
}

func TestAdminRefusesCrossOriginAndRemote(t *testing.T) {
	e := newAdminEnv(t)
	e.wantError(t, "cross-site fetch", "POST", "/admin/senders", "", http.StatusForbidden, "Sec-Fetch-Site", "cross-site")
	e.wantError(t, "foreign origin", "POST", "/admin/senders/x/revoke", "", http.StatusForbidden, "Origin", "http://evil.example")
	if list, _ := e.senders.List(); len(list) != 0 {
		t.Errorf("a refused request created a sender: %+v", list)
	}

	h := NewAdmin(AdminConfig{Senders: e.senders, Logger: zerolog.Nop()})
	req := httptest.NewRequest("GET", "http://localhost/admin/senders", nil)
	req.RemoteAddr = "192.0.2.7:41000"
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusForbidden {
		t.Errorf("non-loopback client: %d %q", rec.Code, rec.Body.String())
	}
	req.RemoteAddr = "[::1]:41000"
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Errorf("IPv6 loopback client: %d %q", rec.Code, rec.Body.String())
	}
}

// TestAdminRefusesForeignHost: a DNS-rebinding page (its own name resolving
// to 127.0.0.1) sends Host: evil.example plus a matching Origin, or
// Sec-Fetch-Site: same-origin; the cross-origin check passes those, the
// Host check must not. Over a real loopback listener.
func TestAdminRefusesForeignHost(t *testing.T) {
	e := newAdminEnv(t)
	const evil = "evil.example:5280"
	for _, c := range []struct {
		what   string
		header []string
	}{
		{"rebinding with Origin", []string{"Host", evil, "Origin", "http://" + evil}},
		{"rebinding with Sec-Fetch-Site", []string{"Host", evil, "Sec-Fetch-Site", "same-origin"}},
		{"foreign host, no browser headers", []string{"Host", "evil.example"}},
		{"localhost lookalike", []string{"Host", "localhost.evil.example"}},
		{"non-loopback IP", []string{"Host", "192.0.2.7:5280"}},
	} {
		for _, path := range []string{"/admin/senders", "/healthz"} {
			method := "GET"
			if path == "/admin/senders" {
				method = "POST"
			}
			e.wantError(t, c.what+" "+path, method, path, "", http.StatusMisdirectedRequest, c.header...)
		}
	}
	if list, _ := e.senders.List(); len(list) != 0 {
		t.Errorf("a refused request created a sender: %+v", list)
	}

	_, port, _ := strings.Cut(strings.TrimPrefix(e.srv.URL, "http://"), ":")
	for _, host := range []string{"localhost", "LOCALHOST:" + port, "127.0.0.1", "127.0.0.1:" + port, "[::1]", "[::1]:" + port, "127.1.2.3:" + port} {
		resp, got := e.do(t, "POST", "/admin/senders", "", "Host", host, "Origin", "http://"+host)
		if resp.StatusCode != http.StatusCreated {
			t.Errorf("Host %q: %d %q", host, resp.StatusCode, got)
		}
	}
}

// TestAdminRefusalLogIsSampled: a page that sends refused requests in a
// loop gets a few warnings in the log, not one per request.
func TestAdminRefusalLogIsSampled(t *testing.T) {
	var logs bytes.Buffer
	db, err := bolt.Open(filepath.Join(t.TempDir(), "ccsd.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	h := NewAdmin(AdminConfig{Senders: auth.NewSenders(db), Logger: zerolog.New(&logs)})
	for range 500 {
		req := httptest.NewRequest("POST", "http://evil.example:5280/admin/senders", nil)
		req.RemoteAddr = "127.0.0.1:41000"
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusMisdirectedRequest {
			t.Fatalf("rebinding request: %d", rec.Code)
		}
	}
	if n := strings.Count(logs.String(), "non-loopback host refused"); n == 0 || n > 10 {
		t.Errorf("%d warnings logged for 500 refused requests, want 1 to 10", n)
	}
}

// TestAdminMountsMetricsAndDebug: the handlers given in AdminConfig answer
// GET /metrics and everything under /debug/pprof/, behind the same
// loopback and Host checks as the rest; without them both paths are 404.
func TestAdminMountsMetricsAndDebug(t *testing.T) {
	senders := newAdminEnv(t).senders
	named := func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, name+" "+r.URL.Path)
		})
	}
	h := NewAdmin(AdminConfig{Senders: senders, Logger: zerolog.Nop(), Metrics: named("metrics"), Debug: named("debug")})
	serve := func(h http.Handler, path, host, remote string) (int, string) {
		req := httptest.NewRequest("GET", "http://"+host+path, nil)
		req.RemoteAddr = remote
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}
	for path, want := range map[string]string{
		"/metrics":               "metrics /metrics",
		"/debug/pprof/":          "debug /debug/pprof/",
		"/debug/pprof/goroutine": "debug /debug/pprof/goroutine",
	} {
		if code, body := serve(h, path, "localhost", "127.0.0.1:4000"); code != http.StatusOK || body != want {
			t.Errorf("GET %s: %d %q, want 200 %q", path, code, body, want)
		}
		if code, _ := serve(h, path, "localhost", "192.0.2.7:4000"); code != http.StatusForbidden {
			t.Errorf("GET %s from a remote address: %d, want 403", path, code)
		}
		if code, _ := serve(h, path, "evil.example", "127.0.0.1:4000"); code != http.StatusMisdirectedRequest {
			t.Errorf("GET %s for a foreign Host: %d, want 421", path, code)
		}
	}
	bare := NewAdmin(AdminConfig{Senders: senders, Logger: zerolog.Nop()})
	for _, path := range []string{"/metrics", "/debug/pprof/"} {
		if code, _ := serve(bare, path, "localhost", "127.0.0.1:4000"); code != http.StatusNotFound {
			t.Errorf("GET %s without a handler: %d, want 404", path, code)
		}
	}
}
