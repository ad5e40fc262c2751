package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

// adminDo sends one request to the admin endpoint with the given Host and
// extra headers, and returns the status and body.
func (s *server) adminDo(method, path, host string, header ...string) (int, string) {
	s.t.Helper()
	req, err := http.NewRequest(method, "http://"+s.Info.AdminAddr+path, strings.NewReader("{}"))
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if host != "" {
		req.Host = host
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("admin %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

// TestAdminRefusesDNSRebinding: a browser page on evil.example whose name
// was rebound to 127.0.0.1 sends Host evil.example with a matching Origin
// (or Sec-Fetch-Site: same-origin); the real admin endpoint refuses it and
// hands out no api_key, while "ccsd sender create" through the same
// endpoint still works.
func TestAdminRefusesDNSRebinding(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	const evil = "evil.example:5280"
	for _, h := range [][]string{
		{"Origin", "http://" + evil},
		{"Sec-Fetch-Site", "same-origin"},
	} {
		code, body := s.adminDo("POST", "/admin/senders", evil, h...)
		var e struct {
			Error  string `json:"error"`
			APIKey string `json:"api_key"`
		}
		if code != http.StatusMisdirectedRequest || json.Unmarshal([]byte(body), &e) != nil || e.Error == "" || e.APIKey != "" {
			t.Errorf("rebinding request with %s: %d %q, want 421 with a JSON error", h[0], code, body)
		}
	}

	var out, errs bytes.Buffer
	cmd := exec.Command(ccsdBin, "sender", "create", "--data", s.Data, "--log-level", "debug")
	cmd.Stdout, cmd.Stderr = &out, &errs
	if err := cmd.Run(); err != nil {
		t.Fatalf("ccsd sender create: %v\n%s", err, errs.String())
	}
	if !strings.Contains(errs.String(), "using the running server's admin endpoint") {
		t.Errorf("ccsd sender create did not go through the admin endpoint:\n%s", errs.String())
	}
	var cred struct {
		SenderID string `json:"sender_id"`
		APIKey   string `json:"api_key"`
	}
	if err := json.Unmarshal(out.Bytes(), &cred); err != nil || cred.SenderID == "" || cred.APIKey == "" {
		t.Fatalf("ccsd sender create printed %q: %v", out.String(), err)
	}
	list, _ := exec.Command(ccsdBin, "sender", "list", "--data", s.Data).Output()
	if n := strings.Count(string(list), `"sender_id"`); n != 2 {
		t.Errorf("senders after the refused requests: %d, want the default and the created one:\n%s", n, list)
	}
}

// readyz returns /readyz's status and its body's reason ("" when ready).
func (s *server) readyz() (int, string) {
	s.t.Helper()
	code, body := s.adminDo("GET", "/readyz", "")
	var r struct {
		Status string `json:"status"`
		Reason string `json:"reason"`
	}
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		s.t.Fatalf("/readyz body %q: %v", body, err)
	}
	if (code == http.StatusOK) != (r.Status == "ready") {
		s.t.Errorf("/readyz: %d with %q", code, body)
	}
	return code, r.Reason
}

// TestReadyzWhileDraining: /readyz is 200 as soon as run.json exists, and
// 503 "draining" (with /healthz 503 too, as before) while a SIGTERM'd
// server waits for an in-flight message, before it exits cleanly.
func TestReadyzWhileDraining(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--commit-delay", "2s", "--drain-grace", "20s")
	if code, reason := s.readyz(); code != http.StatusOK {
		t.Fatalf("/readyz once run.json exists: %d %q", code, reason)
	}
	d := s.checkin()
	reg := s.register(d, s.Sender, "com.example")
	app := s.appServer()
	app.send(`{"to":"` + reg + `","message_id":"before"}`)
	// Answered at once, in read order: once its nack is back, "before"
	// was read and waits in the slow commit, which holds the drain open.
	app.send(`{"message_id":"probe"}`)
	if m := app.expect(wait); m.str("message_id") != "probe" || m.str("message_type") != "nack" {
		t.Fatalf("probe: %v", m.json)
	}
	if err := s.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if c := app.expect(wait); c.str("control_type") != "CONNECTION_DRAINING" {
		t.Fatalf("control: %v", c.json)
	}
	if code, reason := s.readyz(); code != http.StatusServiceUnavailable || reason != "draining" {
		t.Errorf("/readyz while draining: %d %q, want 503 draining", code, reason)
	}
	if code, body := s.adminDo("GET", "/healthz", ""); code != http.StatusServiceUnavailable {
		t.Errorf("/healthz while draining: %d %q, want 503 as before", code, body)
	}
	if m := app.expect(wait); m.str("message_id") != "before" || m.str("message_type") != "ack" {
		t.Errorf("in-flight message: %v", m.json)
	}
	app.closed(wait)
	if err := s.Wait(); err != nil {
		t.Fatalf("exit after drain: %v", err)
	}
}
