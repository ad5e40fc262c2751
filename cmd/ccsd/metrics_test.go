package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

// TestDebugOnlyOnAdmin: importing net/http/pprof registers its handlers on
// http.DefaultServeMux, so no server of the app may serve that mux; the
// public handler answers 404 under /debug/pprof/ and for /metrics, the
// admin handler serves both.
func TestDebugOnlyOnAdmin(t *testing.T) {
	a, err := newApp(appConfig(t), zerolog.Nop(), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Shutdown(t.Context())
	for name, srv := range map[string]*http.Server{"HTTPS": a.httpServer, "admin": a.adminServer} {
		if srv.Handler == nil || srv.Handler == http.DefaultServeMux {
			t.Fatalf("%s server serves http.DefaultServeMux", name)
		}
	}
	get := func(h http.Handler, path string) (int, string) {
		req := httptest.NewRequest("GET", "https://localhost"+path, nil)
		req.RemoteAddr = "127.0.0.1:5000"
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap", "/metrics"} {
		if code, _ := get(a.httpServer.Handler, path); code != http.StatusNotFound {
			t.Errorf("public GET %s: %d, want 404", path, code)
		}
	}
	if code, body := get(a.adminServer.Handler, "/debug/pprof/"); code != http.StatusOK || !strings.Contains(body, "heap") {
		t.Errorf("admin GET /debug/pprof/: %d", code)
	}
	if code, body := get(a.adminServer.Handler, "/metrics"); code != http.StatusOK || !strings.Contains(body, "ccsd_store_commits_total") {
		t.Errorf("admin GET /metrics: %d %.200s", code, body)
	}
}
