package device_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ccsd/ccsd/device"
	"github.com/ccsd/ccsd/internal/ccsdtest"
)

// The tests run the real ccsd binary (built once, without the race
// detector: it is the client that is tested here) on random loopback
// ports, as a developer runs it with "make run".
var (
	ccsdBin string
	// The server of the Example, started by TestMain.
	exampleData, exampleSender, exampleKey string
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "ccsd-device-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if ccsdBin, err = ccsdtest.Build(dir, false); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	p, err := ccsdtest.Start(ccsdBin, filepath.Join(dir, "example-data"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer p.Stop(syscall.SIGTERM)
	exampleData, exampleSender, exampleKey = p.Data, p.Sender, p.APIKey
	return m.Run()
}

// wait bounds every wait for an effect.
const wait = 20 * time.Second

// server is one ccsd for a test.
type server struct {
	*ccsdtest.Proc
	t    *testing.T
	http *http.Client
}

func startServer(t *testing.T, extra ...string) *server {
	t.Helper()
	p, err := ccsdtest.Start(ccsdBin, t.TempDir(), extra...)
	if err != nil {
		t.Fatal(err)
	}
	s := &server{Proc: p, t: t}
	cfg, err := device.FromDataDir(p.Data)
	if err != nil {
		t.Fatal(err)
	}
	s.http = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg.TLS}}
	t.Cleanup(func() {
		_ = s.Stop(syscall.SIGTERM)
		if t.Failed() {
			t.Logf("ccsd log:\n%s", s.Logs())
		}
	})
	return s
}

// config is a device Config for s with a state file in a new directory
// and short backoffs, logging into the test.
func (s *server) config(h device.HandlerFunc) device.Config {
	s.t.Helper()
	cfg, err := device.FromDataDir(s.Data)
	if err != nil {
		s.t.Fatal(err)
	}
	cfg.StateFile = filepath.Join(s.t.TempDir(), "device.json")
	cfg.Handler = h
	cfg.MinBackoff, cfg.MaxBackoff = 20*time.Millisecond, 300*time.Millisecond
	cfg.Logger = slog.New(slog.NewTextHandler(testWriter{s.t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return cfg
}

// newDevice returns a client of cfg registered for the default sender.
func (s *server) newDevice(cfg device.Config, app string) (*device.Client, string) {
	s.t.Helper()
	c, err := device.New(cfg)
	if err != nil {
		s.t.Fatal(err)
	}
	token, err := c.Register(context.Background(), s.Sender, app)
	if err != nil {
		s.t.Fatal(err)
	}
	return c, token
}

// run runs c until the test ends (or stop is called) and returns stop,
// which waits for Run to return and gives its error.
func run(t *testing.T, c *device.Client) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(wait):
				err = fmt.Errorf("Run did not return %v after its context was cancelled", wait)
			}
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	select {
	case <-c.Online():
	case err := <-done:
		t.Fatalf("Run returned before it was online: %v", err)
	case <-time.After(wait):
		t.Fatalf("not online after %v", wait)
	}
	return stop
}

// post sends a JSON body to an HTTPS endpoint with the default sender's
// key and returns the status and body.
func (s *server) post(path string, body any) (int, []byte) {
	s.t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", "https://"+s.Info.HTTPAddr+path, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "key="+s.APIKey)
	req.Header.Set("project_id", s.Sender)
	resp, err := s.http.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// send sends a downstream message to token over /gcm/send and fails the
// test unless it was accepted.
func (s *server) send(token string, data map[string]string, extra ...string) {
	s.t.Helper()
	msg := map[string]any{"to": token, "data": data}
	for i := 0; i+1 < len(extra); i += 2 {
		msg[extra[i]] = extra[i+1]
	}
	code, body := s.post("/gcm/send", msg)
	if code != 200 || !strings.Contains(string(body), `"success":1`) {
		s.t.Fatalf("/gcm/send: %d %s", code, body)
	}
}

// testWriter writes log lines into the test's log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// clientTLS is the TLS configuration trusting s.
func (s *server) clientTLS() *tls.Config {
	cfg, err := device.FromDataDir(s.Data)
	if err != nil {
		s.t.Fatal(err)
	}
	return cfg.TLS
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

func httpClient(cfg device.Config) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg.TLS}}
}

func newPost(url, body string) *http.Request {
	req, err := http.NewRequest("POST", url, strings.NewReader(body))
	if err != nil {
		panic(err)
	}
	req.Header.Set("Content-Type", "application/json")
	return req
}
