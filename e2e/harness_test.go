package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var ccsdBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ccsd-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ccsdBin = filepath.Join(dir, "ccsd")
	args := []string{"build", "-o", ccsdBin}
	if raceEnabled {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, "../cmd/ccsd")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building ccsd:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// runInfo is DATA/run.json, written by ccsd serve once it listens.
type runInfo struct {
	PID        int    `json:"pid"`
	XMPPAddr   string `json:"xmpp_addr"`
	DeviceAddr string `json:"device_addr"`
	HTTPAddr   string `json:"http_addr"`
	AdminAddr  string `json:"admin_addr"`
}

// server is one ccsd process.
type server struct {
	t      *testing.T
	dir    string
	args   []string
	cmd    *exec.Cmd
	log    *bytes.Buffer
	logMu  *sync.Mutex
	info   runInfo
	tls    *tls.Config
	http   *http.Client
	exited chan error
	stdout *bufio.Reader
	Sender string
	APIKey string
}

// startServer starts ccsd serve on a new data directory.
func startServer(t *testing.T, extra ...string) *server {
	t.Helper()
	s := &server{t: t, dir: t.TempDir(), args: extra}
	s.start()
	t.Cleanup(func() { s.stop(syscall.SIGTERM) })
	// The first start of a data directory creates a default sender and
	// prints it as one JSON line on stdout.
	line, err := s.stdout.ReadString('\n')
	if err != nil {
		t.Fatalf("reading the default sender: %v\n%s", err, s.logs())
	}
	var cred struct {
		SenderID string `json:"sender_id"`
		APIKey   string `json:"api_key"`
	}
	if err := json.Unmarshal([]byte(line), &cred); err != nil || cred.SenderID == "" || cred.APIKey == "" {
		t.Fatalf("default sender line %q: %v", line, err)
	}
	s.Sender, s.APIKey = cred.SenderID, cred.APIKey
	return s
}

// start launches the process on s.dir and waits for DATA/run.json.
func (s *server) start() {
	t := s.t
	t.Helper()
	_ = os.Remove(filepath.Join(s.dir, "run.json"))
	args := append([]string{"serve", "--data", s.dir,
		"--xmpp-addr", "127.0.0.1:0", "--device-addr", "127.0.0.1:0",
		"--http-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0",
		"--log-format", "json", "--log-level", "debug"}, s.args...)
	cmd := exec.Command(ccsdBin, args...)
	if s.log == nil {
		s.log, s.logMu = new(bytes.Buffer), new(sync.Mutex)
	}
	cmd.Stderr = &lockedWriter{w: s.log, mu: s.logMu}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.cmd, s.stdout, s.exited = cmd, bufio.NewReader(out), make(chan error, 1)
	go func() { s.exited <- cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, err := os.ReadFile(filepath.Join(s.dir, "run.json"))
		if err == nil && json.Unmarshal(b, &s.info) == nil && s.info.PID == cmd.Process.Pid {
			break
		}
		select {
		case err := <-s.exited:
			t.Fatalf("ccsd exited before listening: %v\n%s", err, s.logs())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("ccsd did not write run.json\n%s", s.logs())
		}
	}
	pem, err := os.ReadFile(filepath.Join(s.dir, "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("cert.pem holds no certificate")
	}
	// Real verification against the certificate ccsd made itself.
	s.tls = &tls.Config{RootCAs: pool, ServerName: "localhost"}
	s.http = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: s.tls}}
}

// stop sends sig and waits for the process to end.
func (s *server) stop(sig syscall.Signal) error {
	if s.cmd == nil {
		return nil
	}
	if s.t.Failed() {
		// A failed test gets the server's goroutine dump in its log.
		sig = syscall.SIGQUIT
	}
	_ = s.cmd.Process.Signal(sig)
	select {
	case err := <-s.exited:
		s.cmd = nil
		if s.t.Failed() {
			s.t.Logf("ccsd log:\n%s", s.logs())
		}
		return err
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		s.t.Errorf("ccsd did not exit on %v\n%s", sig, s.logs())
		return nil
	}
}

// wait waits for the process to exit on its own.
func (s *server) wait() error {
	select {
	case err := <-s.exited:
		s.cmd = nil
		return err
	case <-time.After(30 * time.Second):
		s.t.Fatalf("ccsd did not exit\n%s", s.logs())
		return nil
	}
}

// kill ends the process with SIGKILL, as a crash would.
func (s *server) kill() {
	_ = s.cmd.Process.Kill()
	<-s.exited
	s.cmd = nil
}

// restart starts the process again on the same data directory.
func (s *server) restart() {
	s.start()
}

func (s *server) logs() string {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	return s.log.String()
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// device is a checked-in device identity.
type device struct {
	ID, Token string
}

// checkin creates a device over HTTPS.
func (s *server) checkin() device {
	s.t.Helper()
	resp, err := s.http.Post("https://"+s.info.HTTPAddr+"/checkin", "application/json", strings.NewReader("{}"))
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
	req, _ := http.NewRequest("POST", "https://"+s.info.HTTPAddr+"/c2dm/register3", strings.NewReader(form.Encode()))
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
	resp, err := http.Post("http://"+s.info.AdminAddr+"/admin/senders", "application/json", strings.NewReader("{}"))
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
	c, err := dial(s.t, s.info.XMPPAddr, s.tls, s.Sender+"@gcm.googleapis.com", s.APIKey, "gcm.googleapis.com")
	if err != nil {
		s.t.Fatalf("app server login: %v", err)
	}
	return c
}

// deviceConn opens d's XMPP session.
func (s *server) deviceConn(d device) *client {
	s.t.Helper()
	c, err := dial(s.t, s.info.DeviceAddr, s.tls, d.ID, d.Token, "gcm.googleapis.com")
	if err != nil {
		s.t.Fatalf("device login: %v", err)
	}
	return c
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
