package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ccsd/ccsd/auth"
	"github.com/ccsd/ccsd/httpapi"
	"github.com/ccsd/ccsd/store/bolt"
)

// syncBuffer is a bytes.Buffer safe for a writer goroutine and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// ccsd runs the program in-process and returns its exit code, stdout and
// stderr.
func ccsd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

// server is "ccsd serve" running in a goroutine of the test.
type server struct {
	dir    string
	cancel context.CancelFunc
	done   chan int
	stdout *syncBuffer
	stderr *syncBuffer
	info   runInfo
}

// startServe runs "ccsd serve" on dir with every listener on a random
// loopback port and waits until run.json is written.
func startServe(t *testing.T, dir string, extra ...string) *server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &server{dir: dir, cancel: cancel, done: make(chan int, 1), stdout: &syncBuffer{}, stderr: &syncBuffer{}}
	args := append([]string{"serve", "--data", dir,
		"--xmpp-addr", "127.0.0.1:0", "--device-addr", "127.0.0.1:0",
		"--http-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0",
		"--log-format", "json", "--log-level", "debug", "--drain-grace", "2s"}, extra...)
	go func() { s.done <- run(ctx, args, s.stdout, s.stderr) }()
	t.Cleanup(func() { s.stop(t) })
	deadline := time.After(20 * time.Second)
	for {
		info, err := readRunInfo(dir)
		if err == nil && info.PID == os.Getpid() {
			s.info = info
			return s
		}
		select {
		case code := <-s.done:
			s.done <- code
			t.Fatalf("serve exited with %d before writing run.json:\n%s", code, s.stderr.String())
		case <-deadline:
			t.Fatalf("serve did not write run.json:\n%s", s.stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// stop cancels the server's context (as SIGTERM does) and returns its exit
// code.
func (s *server) stop(t *testing.T) int {
	t.Helper()
	s.cancel()
	select {
	case code := <-s.done:
		s.done <- code
		return code
	case <-time.After(30 * time.Second):
		t.Fatalf("serve did not stop:\n%s", s.stderr.String())
		return -1
	}
}

func TestVersionHelpAndUsage(t *testing.T) {
	if code, out, _ := ccsd(t, "version"); code != 0 || !strings.HasPrefix(out, "ccsd ") {
		t.Errorf("version: %d %q", code, out)
	}
	if code, out, _ := ccsd(t, "help"); code != 0 || !strings.Contains(out, "ccsd serve") {
		t.Errorf("help: %d %q", code, out)
	}
	if code, _, _ := ccsd(t); code != exitUsage {
		t.Errorf("no command: %d", code)
	}
	if code, _, errs := ccsd(t, "frobnicate"); code != exitUsage || !strings.Contains(errs, "unknown command") {
		t.Errorf("unknown command: %d %q", code, errs)
	}
	if code, _, _ := ccsd(t, "serve", "--no-such-flag"); code != exitUsage {
		t.Errorf("unknown flag: %d", code)
	}
	if code, _, errs := ccsd(t, "serve", "-h"); code != 0 || !strings.Contains(errs, "--xmpp-addr") && !strings.Contains(errs, "-xmpp-addr") {
		t.Errorf("serve -h: %d %q", code, errs)
	}
	if code, _, _ := ccsd(t, "sender"); code != exitUsage {
		t.Errorf("sender without subcommand: %d", code)
	}
	if code, _, _ := ccsd(t, "sender", "rename"); code != exitUsage {
		t.Errorf("sender rename: %d", code)
	}
	if code, _, _ := ccsd(t, "sender", "revoke", "--data", t.TempDir()); code != exitUsage {
		t.Errorf("sender revoke without ID: %d", code)
	}
	if code, _, _ := ccsd(t, "sender", "list", "extra", "--data", t.TempDir()); code != exitUsage {
		t.Errorf("sender list with an argument: %d", code)
	}
	if code, _, _ := ccsd(t, "serve", "--log-format", "xml"); code != exitUsage {
		t.Errorf("bad --log-format: %d", code)
	}
}

// decodeCreated parses the one JSON line of "sender create".
func decodeCreated(t *testing.T, out string) httpapi.CreateSenderResponse {
	t.Helper()
	var r httpapi.CreateSenderResponse
	if strings.Count(out, "\n") != 1 || json.Unmarshal([]byte(out), &r) != nil || r.SenderID == "" || !strings.HasPrefix(r.APIKey, "AIza") {
		t.Fatalf("sender create printed %q", out)
	}
	return r
}

func decodeList(t *testing.T, out string) map[string]bool {
	t.Helper()
	var list []httpapi.SenderJSON
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("sender list printed %q: %v", out, err)
	}
	m := map[string]bool{}
	for _, s := range list {
		m[s.SenderID] = s.Revoked
	}
	return m
}

func has(m map[string]bool, k string) bool {
	_, ok := m[k]
	return ok
}

// checkKey opens the store of dir and checks that key authenticates id.
func checkKey(t *testing.T, dir, id, key string) error {
	t.Helper()
	db, err := bolt.Open(filepath.Join(dir, "ccsd.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_, err = auth.NewSenders(db).Authenticate(context.Background(), id, key)
	return err
}

func TestSenderCommandsOffline(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data") // does not exist yet: create makes it

	code, out, errs := ccsd(t, "sender", "create", "--data", dir)
	if code != 0 {
		t.Fatalf("create: %d %s", code, errs)
	}
	auto := decodeCreated(t, out)
	code, out, errs = ccsd(t, "sender", "create", "--id", "my-app", "--data", dir)
	if code != 0 {
		t.Fatalf("create --id: %d %s", code, errs)
	}
	mine := decodeCreated(t, out)
	if mine.SenderID != "my-app" {
		t.Errorf("create --id my-app made %q", mine.SenderID)
	}
	if code, _, errs := ccsd(t, "sender", "create", "--id", "my-app", "--data", dir); code != exitFail || !strings.Contains(errs, "exists") {
		t.Errorf("duplicate create: %d %q", code, errs)
	}
	if code, _, _ := ccsd(t, "sender", "create", "--id", "bad id", "--data", dir); code != exitFail {
		t.Errorf("invalid id: %d", code)
	}

	// Flags after the positional argument work too.
	code, out, errs = ccsd(t, "sender", "revoke", "my-app", "--data", dir)
	var revoked httpapi.SenderJSON
	if code != 0 || json.Unmarshal([]byte(out), &revoked) != nil || !revoked.Revoked || revoked.SenderID != "my-app" {
		t.Fatalf("revoke: %d %q %s", code, out, errs)
	}
	if code, _, errs := ccsd(t, "sender", "revoke", "--data", dir, "nobody"); code != exitFail || !strings.Contains(errs, "unknown sender") {
		t.Errorf("revoke unknown: %d %q", code, errs)
	}

	code, out, _ = ccsd(t, "sender", "list", "--data", dir)
	list := decodeList(t, out)
	if code != 0 || len(list) != 2 || list["my-app"] != true || list[auto.SenderID] != false {
		t.Errorf("list: %d %v", code, list)
	}
	// The printed keys are the real ones.
	if err := checkKey(t, dir, auto.SenderID, auto.APIKey); err != nil {
		t.Errorf("printed key does not authenticate: %v", err)
	}
	if err := checkKey(t, dir, mine.SenderID, mine.APIKey); !errors.Is(err, auth.ErrBadCredentials) {
		t.Errorf("revoked key: %v", err)
	}

	if code, _, _ := ccsd(t, "sender", "list", "--data", filepath.Join(dir, "missing")); code != exitFail {
		t.Errorf("list on a missing data dir: %d", code)
	}
}

func TestSenderCommandsLockedStoreFailFast(t *testing.T) {
	dir := t.TempDir()
	db, err := bolt.Open(filepath.Join(dir, "ccsd.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	// A dead admin address in run.json (a port nobody listens on), then a
	// live HTTP server that is not this data directory's ccsd.
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadAddr := dead.Addr().String()
	dead.Close()
	other := &http.Server{Handler: httpapi.NewAdmin(httpapi.AdminConfig{Senders: auth.NewSenders(db), Instance: "someone-else"})}
	ol, _ := net.Listen("tcp", "127.0.0.1:0")
	go other.Serve(ol)
	defer other.Close()
	// A stopped server (SIGSTOP): the kernel completes the TCP handshake,
	// nothing ever answers.
	stopped, _ := net.Listen("tcp", "127.0.0.1:0")
	defer stopped.Close()

	for _, c := range []struct {
		name    string
		runJSON *runInfo
		want    string
	}{
		{"no run.json", nil, "in use"},
		{"stale run.json", &runInfo{PID: 1, AdminAddr: deadAddr, Instance: "x"}, "in use"},
		{"run.json of another server", &runInfo{PID: 1, AdminAddr: ol.Addr().String(), Instance: "mine"}, "in use"},
		{"stopped server", &runInfo{PID: 4242, AdminAddr: stopped.Addr().String(), Instance: "x"}, "pid 4242, whose admin endpoint " + stopped.Addr().String() + " did not answer within 1s"},
	} {
		os.Remove(filepath.Join(dir, runInfoFile))
		if c.runJSON != nil {
			if err := writeRunInfo(dir, *c.runJSON); err != nil {
				t.Fatal(err)
			}
		}
		for _, args := range [][]string{{"list"}, {"create"}, {"revoke", "x"}} {
			start := time.Now()
			code, out, errs := ccsd(t, append(append([]string{"sender"}, args...), "--data", dir)...)
			if code != exitFail || out != "" || !strings.Contains(errs, c.want) {
				t.Errorf("%s: sender %v = %d %q %q, want a clear error saying %q", c.name, args, code, out, errs, c.want)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("%s: sender %v took %v", c.name, args, d)
			}
		}
	}
	if list, _ := db.Senders(); len(list) != 0 {
		t.Errorf("a refused command created a sender: %+v", list)
	}
}

func TestServeLifecycleAndSendersViaAdmin(t *testing.T) {
	dir := t.TempDir()
	s := startServe(t, dir)

	// First start: one JSON line with the default sender.
	def := decodeCreated(t, s.stdout.String())

	// Every address in run.json is a bound port.
	for _, a := range []string{s.info.XMPPAddr, s.info.DeviceAddr, s.info.HTTPAddr, s.info.AdminAddr} {
		c, err := net.DialTimeout("tcp", a, 2*time.Second)
		if err != nil {
			t.Errorf("dial %s from run.json: %v", a, err)
			continue
		}
		c.Close()
	}

	// HTTPS answers with the certificate written to DATA/cert.pem, valid
	// for localhost.
	pemBytes, err := os.ReadFile(filepath.Join(dir, "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemBytes)
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "localhost"}}}
	resp, err := hc.Post("https://"+s.info.HTTPAddr+"/checkin", "application/json", nil)
	if err != nil {
		t.Fatalf("checkin over HTTPS: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "android_id") {
		t.Errorf("checkin: %d %q", resp.StatusCode, body)
	}

	// The legacy send endpoint is mounted and knows the default sender's
	// key (spec §11's auth check: a bad key is 401, a good one 200).
	for key, want := range map[string]int{def.APIKey: 200, "AIzaWrong": 401} {
		req, _ := http.NewRequest("POST", "https://"+s.info.HTTPAddr+"/gcm/send", strings.NewReader(`{"registration_ids":["ABC"]}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "key="+key)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("gcm/send: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("gcm/send with key %q: %d, want %d", key, resp.StatusCode, want)
		}
	}

	// The device-group endpoint is mounted and authenticates the sender.
	for key, want := range map[string]int{def.APIKey: 404, "AIzaWrong": 401} {
		req, _ := http.NewRequest("GET", "https://"+s.info.HTTPAddr+"/gcm/notification?notification_key_name=none", nil)
		req.Header.Set("Authorization", "key="+key)
		req.Header.Set("project_id", def.SenderID)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("gcm/notification: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("gcm/notification with key %q: %d, want %d", key, resp.StatusCode, want)
		}
	}

	// The store is locked by the server: the subcommands go through the
	// admin endpoint.
	code, out, errs := ccsd(t, "sender", "create", "--id", "live", "--data", dir, "--log-level", "debug")
	if code != 0 || !strings.Contains(errs, "admin endpoint") {
		t.Fatalf("create via admin: %d %q %q", code, out, errs)
	}
	live := decodeCreated(t, out)
	if code, _, errs := ccsd(t, "sender", "create", "--id", "live", "--data", dir); code != exitFail || !strings.Contains(errs, "exists") {
		t.Errorf("duplicate create via admin: %d %q", code, errs)
	}
	if code, out, _ := ccsd(t, "sender", "revoke", "live", "--data", dir); code != 0 || !strings.Contains(out, `"revoked":true`) {
		t.Errorf("revoke via admin: %d %q", code, out)
	}
	if code, _, errs := ccsd(t, "sender", "revoke", "ghost", "--data", dir); code != exitFail || !strings.Contains(errs, "unknown sender") {
		t.Errorf("revoke unknown via admin: %d %q", code, errs)
	}
	code, out, _ = ccsd(t, "sender", "list", "--data", dir)
	if list := decodeList(t, out); code != 0 || len(list) != 2 || list["live"] != true || list[def.SenderID] != false {
		t.Errorf("list via admin: %d %v", code, list)
	}

	// A second server on the same data directory refuses to start.
	code, _, errs = ccsd(t, "serve", "--data", dir, "--xmpp-addr", "127.0.0.1:0", "--device-addr", "127.0.0.1:0",
		"--http-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--log-format", "json")
	if code != exitFail || !strings.Contains(errs, "in use") {
		t.Errorf("second serve on the same data: %d %q", code, errs)
	}

	// Graceful stop: exit 0, run.json removed, the store released.
	if code := s.stop(t); code != 0 {
		t.Fatalf("serve exited %d:\n%s", code, s.stderr.String())
	}
	if _, err := os.Stat(filepath.Join(dir, runInfoFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("run.json left after a clean exit: %v", err)
	}
	if !strings.Contains(s.stderr.String(), "ccsd stopped") {
		t.Errorf("no stop log line:\n%s", s.stderr.String())
	}
	if err := checkKey(t, dir, def.SenderID, def.APIKey); err != nil {
		t.Errorf("default sender's printed key: %v", err)
	}
	if err := checkKey(t, dir, live.SenderID, live.APIKey); !errors.Is(err, auth.ErrBadCredentials) {
		t.Errorf("revoked sender: %v", err)
	}

	// A restart keeps the data and creates no new default sender.
	s2 := startServe(t, dir)
	if out := s2.stdout.String(); out != "" {
		t.Errorf("restart printed %q on stdout, want nothing", out)
	}
	code, out, _ = ccsd(t, "sender", "list", "--data", dir)
	if list := decodeList(t, out); code != 0 || len(list) != 2 {
		t.Errorf("list after restart: %d %v", code, list)
	}
	if code := s2.stop(t); code != 0 {
		t.Errorf("second serve exited %d", code)
	}
}

func TestServeRefusesBadFlags(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		name string
		args []string
	}{
		{"admin on all interfaces", []string{"--admin-addr", ":0"}},
		{"admin on 0.0.0.0", []string{"--admin-addr", "0.0.0.0:0"}},
		{"admin on a public address", []string{"--admin-addr", "192.0.2.1:5280"}},
		{"admin without port", []string{"--admin-addr", "127.0.0.1"}},
		{"bad xmpp addr", []string{"--xmpp-addr", "nonsense"}},
		{"zero group size", []string{"--max-group-members", "0"}},
		{"negative drain", []string{"--drain-grace", "-1s"}},
		{"negative commit delay", []string{"--commit-delay", "-1ms"}},
		{"negative connection age", []string{"--max-connection-age", "-1s"}},
		{"negative checkin burst", []string{"--checkin-burst", "-1"}},
		{"zero checkin interval", []string{"--checkin-interval", "0s"}},
		{"zero register interval", []string{"--register-interval", "0s"}},
		{"no registrations", []string{"--max-device-registrations", "0"}},
		{"negative device ttl", []string{"--unused-device-ttl", "-1h"}},
		{"zero device sweep", []string{"--device-sweep-interval", "0s"}},
		{"argument", []string{"extra"}},
	} {
		code, _, errs := ccsd(t, append([]string{"serve", "--data", dir, "--log-format", "json"}, c.args...)...)
		if code != exitUsage {
			t.Errorf("%s: exit %d, want %d; stderr %q", c.name, code, exitUsage, errs)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "ccsd.db")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("refused serve created a database: %v", err)
	}
}

func TestServePortInUse(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	dir := t.TempDir()
	code, _, errs := ccsd(t, "serve", "--data", dir, "--log-format", "json",
		"--xmpp-addr", "127.0.0.1:0", "--device-addr", "127.0.0.1:0",
		"--http-addr", taken.Addr().String(), "--admin-addr", "127.0.0.1:0")
	if code != exitFail || !strings.Contains(errs, "listen http") {
		t.Errorf("port in use: %d %q", code, errs)
	}
	if _, err := os.Stat(filepath.Join(dir, runInfoFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("run.json written although serve failed")
	}
}

func TestEnvironmentFlags(t *testing.T) {
	envDir, flagDir := t.TempDir(), t.TempDir()
	t.Setenv("CCSD_DATA", envDir)
	if code, _, errs := ccsd(t, "sender", "create", "--id", "from-env"); code != 0 {
		t.Fatalf("create with CCSD_DATA: %d %s", code, errs)
	}
	if code, _, errs := ccsd(t, "sender", "create", "--id", "from-flag", "--data", flagDir); code != 0 {
		t.Fatalf("create with --data: %d %s", code, errs)
	}
	_, out, _ := ccsd(t, "sender", "list")
	if list := decodeList(t, out); len(list) != 1 || !has(list, "from-env") {
		t.Errorf("CCSD_DATA dir holds %v, want only from-env", list)
	}
	_, out, _ = ccsd(t, "sender", "list", "--data", flagDir)
	if list := decodeList(t, out); len(list) != 1 || !has(list, "from-flag") {
		t.Errorf("--data dir holds %v, want only from-flag (the flag wins over the environment)", list)
	}

	t.Setenv("CCSD_DRAIN_GRACE", "soon")
	if code, _, errs := ccsd(t, "serve"); code != exitUsage || !strings.Contains(errs, "CCSD_DRAIN_GRACE") ||
		!strings.Contains(errs, "want a duration such as") {
		t.Errorf("bad CCSD_DRAIN_GRACE: %d %q, want the variable named and the format it takes", code, errs)
	}
	t.Setenv("CCSD_DRAIN_GRACE", "1s")
	t.Setenv("CCSD_ADMIN_ADDR", "0.0.0.0:5280")
	t.Setenv("CCSD_XMPP_ADR", "127.0.0.1:1") // misspelt
	code, _, errs := ccsd(t, "serve", "--log-format", "json")
	if code != exitUsage {
		t.Errorf("non-loopback CCSD_ADMIN_ADDR: %d", code)
	}
	if !strings.Contains(errs, `CCSD_ADMIN_ADDR \"0.0.0.0:5280\" is not a loopback address`) || strings.Contains(errs, "--admin-addr \\\"") {
		t.Errorf("the complaint about CCSD_ADMIN_ADDR does not name the variable: %s", errs)
	}
	if !strings.Contains(errs, `"variable":"CCSD_XMPP_ADR"`) || strings.Contains(errs, `"variable":"CCSD_DATA"`) {
		t.Errorf("unknown CCSD_XMPP_ADR not warned about (or a known one was): %s", errs)
	}
}

func TestEnvName(t *testing.T) {
	for in, want := range map[string]string{"data": "CCSD_DATA", "xmpp-addr": "CCSD_XMPP_ADDR", "max-group-members": "CCSD_MAX_GROUP_MEMBERS"} {
		if got := envName(in); got != want {
			t.Errorf("envName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:5280": true, "127.1.2.3:0": true, "[::1]:5280": true, "localhost:5280": true,
		"0.0.0.0:5280": false, ":5280": false, "[::]:5280": false, "10.0.0.1:5280": false,
		"example.com:5280": false, "127.0.0.1": false,
	} {
		if got := isLoopback(addr); got != want {
			t.Errorf("isLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}

func TestSignals(t *testing.T) {
	sigs := make(chan os.Signal, 2)
	ctx, cancel := context.WithCancelCause(context.Background())
	exited := make(chan int, 1)
	go watchSignals(sigs, cancel, func(code int) { exited <- code })

	sigs <- syscall.SIGTERM
	select {
	case <-ctx.Done():
		if cause := context.Cause(ctx); !strings.Contains(cause.Error(), "terminated") {
			t.Errorf("cause = %v", cause)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("first signal did not cancel the context")
	}
	select {
	case code := <-exited:
		t.Fatalf("exit(%d) after one signal", code)
	case <-time.After(50 * time.Millisecond):
	}
	sigs <- os.Interrupt
	select {
	case code := <-exited:
		if code != 1 {
			t.Errorf("second signal: exit(%d), want exit(1)", code)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("second signal did not exit")
	}
}
