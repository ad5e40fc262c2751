package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	ccsdevice "github.com/ccsd/ccsd/device"
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

// device is a checked-in device: its identity, and the device.Client
// (package device, the client developers use) that checked it in and
// registers its apps. A test that needs the raw wire (exact HTTP answers
// of register3, a hostile or misbehaving device) uses ID and Token with
// register3 or deviceConn instead; such a device{ID, Token} has no client.
type device struct {
	ID, Token string
	c         *ccsdevice.Client
}

// httpWait bounds one checkin or registration through the device client,
// including its waits out of a 429's Retry-After.
const httpWait = 30 * time.Second

// deviceConfig is a device.Config for s: addresses read from its run.json
// before each connection (so a restarted server on new ports is found
// again), trust from its cert.pem, short backoffs, logs into the test.
func (s *server) deviceConfig(h ccsdevice.Handler) ccsdevice.Config {
	s.t.Helper()
	cfg, err := ccsdevice.FromDataDir(s.Data)
	if err != nil {
		s.t.Fatal(err)
	}
	cfg.TLS.ServerName = "localhost"
	cfg.Handler = h
	cfg.MinBackoff, cfg.MaxBackoff = 20*time.Millisecond, 300*time.Millisecond
	cfg.DedupWindow = 1024 // a test device handles few messages: keep it small
	cfg.Logger = slog.New(slog.NewTextHandler(testLog{s.t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	return cfg
}

// testLog writes the device client's log lines into the test's log.
type testLog struct{ t *testing.T }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// checkin creates a device over HTTPS with the device package.
func (s *server) checkin() device {
	s.t.Helper()
	return s.checkinWith(nil)
}

// checkinWith checks in a device whose client hands downstream messages
// to h once it runs (runDevice).
func (s *server) checkinWith(h ccsdevice.Handler) device {
	s.t.Helper()
	c, err := ccsdevice.New(s.deviceConfig(h))
	if err != nil {
		s.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), httpWait)
	defer cancel()
	if err := c.Checkin(ctx); err != nil {
		s.t.Fatalf("checkin: %v", err)
	}
	st := c.State()
	return device{ID: st.AndroidID, Token: st.SecurityToken, c: c}
}

// register3 posts to /c2dm/register3 and returns the status and body: the
// raw answer, for the tests that check it exactly.
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

// register registers app on d for sender with d's device client and
// returns the registration id. The client checks in again by itself when
// ccsd no longer knows the device; that fails the test here, as the
// device is expected to be known.
func (s *server) register(d device, sender, app string) string {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), httpWait)
	defer cancel()
	reg, err := d.client(s.t).Register(ctx, sender, app)
	if err != nil {
		s.t.Fatalf("register: %v", err)
	}
	if id := d.c.State().AndroidID; id != d.ID {
		s.t.Fatalf("register: ccsd did not know device %s any more (the client checked in again as %s)", d.ID, id)
	}
	return reg
}

func (s *server) unregister(d device, sender, app string) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), httpWait)
	defer cancel()
	if err := d.client(s.t).Unregister(ctx, sender, app); err != nil {
		s.t.Fatalf("unregister: %v", err)
	}
}

// client returns d's device client; d must come from checkin.
func (d device) client(t *testing.T) *ccsdevice.Client {
	t.Helper()
	if d.c == nil {
		t.Fatalf("device %s has no device.Client (made by hand, not by checkin)", d.ID)
	}
	return d.c
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

// inbox is a device.Handler that hands each downstream message to the
// test. The device client acks a message once HandleMessage returns,
// which is once the message is in the inbox: "a device that receives and
// acks", for the tests that check what arrives and not how it is framed.
type inbox struct {
	t  *testing.T
	ch chan *ccsdevice.Message
}

func newInbox(t *testing.T) *inbox {
	return &inbox{t: t, ch: make(chan *ccsdevice.Message, 1024)}
}

// HandleMessage puts m in the inbox (and so gets it acked).
func (in *inbox) HandleMessage(ctx context.Context, m *ccsdevice.Message) error {
	select {
	case in.ch <- m:
		return nil
	case <-ctx.Done():
		return ctx.Err() // nacked: the message stays queued in ccsd
	}
}

// expect returns the next message as a msg (its JSON as received), or
// fails the test after d.
func (in *inbox) expect(d time.Duration) msg {
	in.t.Helper()
	select {
	case m := <-in.ch:
		v := msg{raw: string(m.Raw)}
		if err := json.Unmarshal(m.Raw, &v.json); err != nil {
			in.t.Fatalf("payload is not JSON: %q", m.Raw)
		}
		return v
	case <-time.After(d):
		in.t.Fatalf("device received nothing in %v", d)
		return msg{}
	}
}

// onlineDeviceClient checks in a device whose messages go to a new inbox,
// registers app for sender on it, and runs its device client (Run) until
// the test ends, once online.
func (s *server) onlineDeviceClient(sender, app string) (device, string, *inbox) {
	s.t.Helper()
	in := newInbox(s.t)
	d := s.checkinWith(in)
	reg := s.register(d, sender, app)
	s.runDevice(d)
	return d, reg, in
}

// runDevice runs d's device client until the test ends and waits until it
// is online. At the end Run's context is cancelled and Run awaited, so
// nothing logs into the test after it.
func (s *server) runDevice(d device) {
	s.t.Helper()
	c := d.client(s.t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	s.t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(wait):
			s.t.Errorf("device client did not stop %v after its context ended", wait)
		}
	})
	select {
	case <-c.Online():
	case err := <-done:
		s.t.Fatalf("device client stopped before it was online: %v", err)
	case <-time.After(wait):
		s.t.Fatalf("device client not online after %v", wait)
	}
}

// pkgDevice is a running device.Client seen as an upstreamDevice.
type pkgDevice struct{ c *ccsdevice.Client }

// upstream returns d's device client (running: runDevice) for upstream
// sends.
func (d device) upstream(t *testing.T) pkgDevice { return pkgDevice{d.client(t)} }

// send sends u with the device package and returns ccsd's answer: nil for
// an ack, a *device.NackError for a nack.
func (p pkgDevice) send(u ccsdevice.Upstream) error {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	_, err := p.c.Send(ctx, u)
	return err
}

// sendAcked sends message id upstream and fails the test unless ccsd
// acks it.
func (p pkgDevice) sendAcked(t *testing.T, sender, category, id string) {
	t.Helper()
	if err := p.send(ccsdevice.Upstream{Sender: sender, Category: category, MessageID: id}); err != nil {
		t.Fatalf("upstream %s: %v", id, err)
	}
}

// nackCode returns the CCS error code of a nack, or fails the test if err
// is not one.
func nackCode(t *testing.T, err error) string {
	t.Helper()
	var n *ccsdevice.NackError
	if !errors.As(err, &n) {
		t.Fatalf("want a nack, got %v", err)
	}
	return n.Code
}

// receiver is a device the test reads downstream messages from: the raw
// client, or an inbox (whose device client acks by itself).
type receiver interface {
	expect(d time.Duration) msg
	ack(messageID string)
}

// ack does nothing: the device client acked the message once the inbox
// took it.
func (in *inbox) ack(string) {}
