package httpapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ccsd/ccsd/auth"
	"github.com/ccsd/ccsd/fanout"
)

// fakeConns is a ConnectionService recording the drains asked of it.
type fakeConns struct {
	list    []fanout.SessionInfo
	drained []string // ids of DrainConn, "*" for DrainAppServers
}

func (f *fakeConns) Sessions() []fanout.SessionInfo { return f.list }
func (f *fakeConns) DrainAppServers() int           { f.drained = append(f.drained, "*"); return 2 }
func (f *fakeConns) DrainConn(id string) error {
	f.drained = append(f.drained, id)
	for _, s := range f.list {
		if s.ID == id && s.Kind == fanout.KindDevice {
			return fanout.ErrNotAppServer
		}
		if s.ID == id {
			return nil
		}
	}
	return fanout.ErrUnknownConn
}

// TestAdminConnections: the list is JSON with every field named in the
// docs (since in RFC 3339 UTC); each drain endpoint answers 202 with the
// count and reaches the service; an unknown id is 404, a device 409.
func TestAdminConnections(t *testing.T) {
	e := newAdminEnv(t)
	since := time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600))
	fc := &fakeConns{list: []fanout.SessionInfo{
		{ID: "app-1", Kind: fanout.KindApp, Identity: "123", Remote: "127.0.0.1:4000", Since: since, Pending: 3, InFlight: 1, Draining: true},
		{ID: "dev-1", Kind: fanout.KindDevice, Identity: "d1", Remote: "127.0.0.1:4001", Since: since},
	}}
	srv := httptest.NewServer(NewAdmin(AdminConfig{Senders: auth.NewSenders(e.db), Logger: zerolog.Nop(), Connections: fc}))
	defer srv.Close()
	e.srv = srv

	resp, got := e.do(t, "GET", "/admin/connections", "")
	want := `[{"id":"app-1","kind":"app","identity":"123","remote":"127.0.0.1:4000","since":"2026-01-02T02:04:05Z","pending":3,"in_flight":1,"draining":true},` +
		`{"id":"dev-1","kind":"device","identity":"d1","remote":"127.0.0.1:4001","since":"2026-01-02T02:04:05Z","pending":0,"in_flight":0,"draining":false}]`
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(got) != want {
		t.Fatalf("GET /admin/connections: %d %s\nwant %s", resp.StatusCode, got, want)
	}
	resp, got = e.do(t, "GET", "/admin/connections?kind=device", "")
	var l []ConnectionJSON
	if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(got), &l) != nil || len(l) != 1 || l[0].ID != "dev-1" {
		t.Fatalf("?kind=device: %d %s", resp.StatusCode, got)
	}
	e.wantError(t, "bad kind", "GET", "/admin/connections?kind=phone", "", http.StatusBadRequest)
	for _, c := range []struct {
		path   string
		status int
		count  int
	}{
		{"/admin/drain", http.StatusAccepted, 2},
		{"/admin/connections/app-1/drain", http.StatusAccepted, 1},
	} {
		resp, got := e.do(t, "POST", c.path, "")
		var d DrainResponse
		if resp.StatusCode != c.status || json.Unmarshal([]byte(got), &d) != nil || d.Drained != c.count {
			t.Fatalf("POST %s: %d %s", c.path, resp.StatusCode, got)
		}
	}
	e.wantError(t, "unknown connection", "POST", "/admin/connections/app-9/drain", "", http.StatusNotFound)
	e.wantError(t, "device session", "POST", "/admin/connections/dev-1/drain", "", http.StatusConflict)
	if got := strings.Join(fc.drained, ","); got != "*,app-1,app-9,dev-1" {
		t.Fatalf("drains asked: %s", got)
	}
}
