package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ccsd/ccsd/internal/ccsdtest"
)

var ccsdBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ccsd-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ccsdBin, err = ccsdtest.Build(dir, raceEnabled)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// server is one ccsd process, with clients that trust its certificate.
type server struct {
	*ccsdtest.Proc
	t    *testing.T
	tls  *tls.Config
	http *http.Client
}

// startServer starts ccsd serve on a new data directory. When the test
// ends the server is stopped; a failed test gets its log and goroutine dump.
func startServer(t *testing.T, extra ...string) *server {
	t.Helper()
	p, err := ccsdtest.Start(ccsdBin, t.TempDir(), extra...)
	if err != nil {
		t.Fatal(err)
	}
	s := &server{Proc: p, t: t}
	s.trust()
	t.Cleanup(func() {
		sig := os.Signal(syscall.SIGTERM)
		if t.Failed() {
			sig = syscall.SIGQUIT // Go dumps every goroutine
		}
		_ = s.Stop(sig)
		if t.Failed() {
			t.Logf("ccsd log:\n%s", s.Logs())
		}
	})
	return s
}

// trust loads the certificate ccsd made itself: clients verify it for real.
func (s *server) trust() {
	pem, err := os.ReadFile(filepath.Join(s.Data, "cert.pem"))
	if err != nil {
		s.t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		s.t.Fatal("cert.pem holds no certificate")
	}
	s.tls = &tls.Config{RootCAs: pool, ServerName: "localhost"}
	s.http = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: s.tls}}
}

// restart starts the process again on the same data directory.
func (s *server) restart() {
	s.t.Helper()
	if err := s.Restart(); err != nil {
		s.t.Fatal(err)
	}
	s.trust()
}

// device is a checked-in device identity.
type device struct {
	ID, Token string
}

// checkin creates a device over HTTPS.
func (s *server) checkin() device {
	s.t.Helper()
	resp, err := s.http.Post("https://"+s.Info.HTTPAddr+"/checkin", "application/json", strings.NewReader("{}"))
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	var v struct {
		AndroidID     string `json:"android_id"`
		SecurityToken string `json:"security_token"`
	}
	if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&v) != nil || v.AndroidID == "" {
		s.t.Fatalf("checkin: %s", resp.Status)
	}
	return device{ID: v.AndroidID, Token: v.SecurityToken}
}

// register3 posts to /c2dm/register3 and returns the status and body.
func (s *server) register3(d device, form url.Values) (int, string) {
	s.t.Helper()
	req, _ := http.NewRequest("POST", "https://"+s.Info.HTTPAddr+"/c2dm/register3", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "AidLogin "+d.ID+":"+d.Token)
	resp, err := s.http.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

// register registers app on d for sender and returns the registration id.
func (s *server) register(d device, sender, app string) string {
	s.t.Helper()
	code, body := s.register3(d, url.Values{"app": {app}, "sender": {sender}, "device": {d.ID}})
	reg, ok := strings.CutPrefix(body, "token=")
	if code != 200 || !ok || reg == "" {
		s.t.Fatalf("register3: %d %q", code, body)
	}
	return reg
}

func (s *server) unregister(d device, sender, app string) {
	s.t.Helper()
	code, body := s.register3(d, url.Values{"app": {app}, "sender": {sender}, "device": {d.ID}, "delete": {"true"}})
	if code != 200 {
		s.t.Fatalf("unregister: %d %q", code, body)
	}
}

// newSender creates another sender through the admin endpoint.
func (s *server) newSender() (id, key string) {
	s.t.Helper()
	resp, err := http.Post("http://"+s.Info.AdminAddr+"/admin/senders", "application/json", strings.NewReader("{}"))
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	var v struct {
		SenderID string `json:"sender_id"`
		APIKey   string `json:"api_key"`
	}
	if resp.StatusCode != 201 || json.NewDecoder(resp.Body).Decode(&v) != nil {
		s.t.Fatalf("admin create sender: %s", resp.Status)
	}
	return v.SenderID, v.APIKey
}

// appServer logs in as the default sender.
func (s *server) appServer() *client {
	s.t.Helper()
	c, err := dial(s.t, s.Info.XMPPAddr, s.tls, s.Sender+"@gcm.googleapis.com", s.APIKey, "gcm.googleapis.com")
	if err != nil {
		s.t.Fatalf("app server login: %v", err)
	}
	return c
}

// deviceConn opens d's XMPP session.
func (s *server) deviceConn(d device) *client {
	s.t.Helper()
	c, err := dial(s.t, s.Info.DeviceAddr, s.tls, d.ID, d.Token, "gcm.googleapis.com")
	if err != nil {
		s.t.Fatalf("device login: %v", err)
	}
	return c
}
