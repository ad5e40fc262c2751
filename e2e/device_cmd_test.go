package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// ccsdCmd runs the built ccsd with args and returns its stdout, stderr
// and exit code.
func ccsdCmd(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(ccsdBin, args...)
	cmd.Env = cleanEnv()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(3 * wait):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("ccsd %v did not exit in %v\nstderr: %s", args, 3*wait, errb.String())
	}
	return out.String(), errb.String(), cmd.ProcessState.ExitCode()
}

// cleanEnv is the environment without CCSD_* variables, which every flag
// reads: the test says what it means on the command line.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CCSD_") {
			env = append(env, kv)
		}
	}
	return env
}

// mustCCSD runs ccsd and fails the test unless it exits 0.
func mustCCSD(t *testing.T, args ...string) string {
	t.Helper()
	out, errs, code := ccsdCmd(t, args...)
	if code != 0 {
		t.Fatalf("ccsd %v: exit %d\nstdout: %s\nstderr: %s", args, code, out, errs)
	}
	return out
}

// listener is a "ccsd device listen" running in the background.
type listener struct {
	cmd   *exec.Cmd
	lines chan string
	done  chan error
	errb  *bytes.Buffer
}

func startListen(t *testing.T, args ...string) *listener {
	t.Helper()
	cmd := exec.Command(ccsdBin, append([]string{"device", "listen"}, args...)...)
	cmd.Env = cleanEnv()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	l := &listener{cmd: cmd, lines: make(chan string, 100), done: make(chan error, 1), errb: new(bytes.Buffer)}
	cmd.Stderr = &lockedWriter{w: l.errb}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			l.lines <- sc.Text()
		}
		close(l.lines)
		l.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-l.done:
		case <-time.After(wait):
			_ = cmd.Process.Kill()
		}
		if t.Failed() {
			t.Logf("listen stderr:\n%s", l.errb.String())
		}
	})
	return l
}

// line returns the next line the listener printed.
func (l *listener) line(t *testing.T) string {
	t.Helper()
	select {
	case s, ok := <-l.lines:
		if !ok {
			t.Fatalf("listen exited: %v", <-l.done)
		}
		return s
	case <-time.After(2 * wait):
		t.Fatalf("listen printed nothing in %v", 2*wait)
		return ""
	}
}

type lockedWriter struct {
	w io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) { return l.w.Write(p) }

// TestDeviceCommands runs "ccsd device" as a developer would, against a
// running server found through its data directory: register, listen
// (pretty and --json, acking what it printed), send upstream (acked, and
// nacked with the code), a listener that outlives a SIGKILL of the
// server, and unregister.
func TestDeviceCommands(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	app := s.appServer()
	data := []string{"--data", s.Data}
	reg := strings.TrimSpace(mustCCSD(t, append([]string{"device", "register", "--sender", s.Sender, "--app", "com.example.chat"}, data...)...))
	if reg == "" || strings.ContainsAny(reg, " \n=") {
		t.Fatalf("register printed %q, want the registration id alone", reg)
	}
	if fi, err := os.Stat(filepath.Join(s.Data, "device.json")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("state file: %v, %v", fi, err)
	}
	if again := strings.TrimSpace(mustCCSD(t, append([]string{"device", "register", "--sender", s.Sender, "--app", "com.example.chat"}, data...)...)); again != reg {
		t.Fatalf("register again printed %q, want the same %q", again, reg)
	}

	sendDown := func(id, k, v string) {
		t.Helper()
		app.send(`{"to":"` + reg + `","message_id":"` + id + `","data":{"` + k + `":"` + v + `"}}`)
		if a := app.expect(wait); a.str("message_type") != "ack" {
			t.Fatalf("app server send %s: %v", id, a.json)
		}
	}
	sendDown("m-1", "hello", "world")
	out := mustCCSD(t, append([]string{"device", "listen", "--json", "--count", "1"}, data...)...)
	var got map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil || strings.Count(out, "\n") != 1 {
		t.Fatalf("listen --json printed %q: want one JSON line (%v)", out, err)
	}
	if got["message_id"] != "m-1" || got["to"] != reg || got["category"] != "com.example.chat" || got["data"].(map[string]any)["hello"] != "world" {
		t.Fatalf("listen --json: %v", got)
	}
	sendDown("m-2", "n", "2") // m-1 was acked: m-2 comes first
	if out := mustCCSD(t, append([]string{"device", "listen", "--count", "1"}, data...)...); !strings.Contains(out, "message m-2 from "+s.Sender+" to com.example.chat: n=2") {
		t.Fatalf("listen printed %q, want m-2 (m-1 was acked)", out)
	}

	id := strings.TrimSpace(mustCCSD(t, append([]string{"device", "send", "--to", s.Sender, "--data", "k=v", "--data", "x=y=z"}, data...)...))
	up := app.expect(wait)
	if up.str("message_id") != id || up.str("from") != reg || up.str("category") != "com.example.chat" {
		t.Fatalf("app server got %v, want upstream %s", up.json, id)
	}
	if d, _ := up.json["data"].(map[string]any); d["k"] != "v" || d["x"] != "y=z" {
		t.Fatalf("upstream data %v", up.json["data"])
	}
	app.ackUpstream(up.str("from"), id)
	_, errs, code := ccsdCmd(t, append([]string{"device", "send", "--to", s.Sender, "--app", "com.nope", "--data", "k=v"}, data...)...)
	if code == 0 || !strings.Contains(errs, "BAD_REGISTRATION") {
		t.Fatalf("send for an unregistered app: exit %d, stderr %s; want non-zero with BAD_REGISTRATION", code, errs)
	}

	// A listener keeps going through a crash of the server: it finds the
	// restarted server (on new ports) through run.json.
	l := startListen(t, data...)
	sendDown("m-3", "n", "3")
	if line := l.line(t); !strings.Contains(line, "message m-3 ") {
		t.Fatalf("listen printed %q, want m-3", line)
	}
	s.Kill()
	s.restart()
	app = s.appServer()
	sendDown("m-4", "n", "4")
	if line := l.line(t); !strings.Contains(line, "message m-4 ") {
		t.Fatalf("after the restart listen printed %q, want m-4", line)
	}

	mustCCSD(t, append([]string{"device", "unregister"}, data...)...)
	app.send(`{"to":"` + reg + `","message_id":"m-5"}`)
	if a := app.expect(wait); a.str("message_type") != "nack" || a.str("error") != "DEVICE_UNREGISTERED" {
		t.Fatalf("send after unregister: %v, want DEVICE_UNREGISTERED", a.json)
	}
}

// TestDeviceCommandsExplicitAddresses: without a data directory, the
// addresses and the certificate are given on the command line.
func TestDeviceCommandsExplicitAddresses(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	state := filepath.Join(t.TempDir(), "phone.json")
	flags := []string{"--data", filepath.Join(t.TempDir(), "none"), "--http-addr", s.Info.HTTPAddr,
		"--device-addr", s.Info.DeviceAddr, "--ca", filepath.Join(s.Data, "cert.pem"), "--state", state}
	reg := strings.TrimSpace(mustCCSD(t, append([]string{"device", "register", "--sender", s.Sender, "--app", "com.example"}, flags...)...))
	app := s.appServer()
	app.send(`{"to":"` + reg + `","message_id":"e-1","data":{"a":"b"}}`)
	if a := app.expect(wait); a.str("message_type") != "ack" {
		t.Fatalf("send: %v", a.json)
	}
	if out := mustCCSD(t, append([]string{"device", "listen", "--count", "1"}, flags...)...); !strings.Contains(out, "message e-1 ") {
		t.Fatalf("listen printed %q", out)
	}
	// A data directory without a running server (its cert.pem, no
	// run.json): send fails at once, naming what is missing, rather than
	// waiting out its --timeout.
	stopped := t.TempDir()
	pem, err := os.ReadFile(filepath.Join(s.Data, "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(stopped, "cert.pem"), pem, 0o600); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, errs, code := ccsdCmd(t, "device", "send", "--to", s.Sender, "--data", "k=v", "--data", stopped, "--state", state, "--timeout", "1m")
	if code == 0 || !strings.Contains(errs, "run.json") || time.Since(start) > 20*time.Second {
		t.Fatalf("send with no server: exit %d after %v, %s", code, time.Since(start), errs)
	}
	// No server there and no addresses: a clear error, at once.
	_, errs, code = ccsdCmd(t, "device", "register", "--sender", "1", "--app", "a", "--data", t.TempDir())
	if code == 0 || !strings.Contains(errs, "cert.pem") {
		t.Fatalf("register with an empty data directory: exit %d, %s", code, errs)
	}
}

// TestDeviceCommandsGroup: "ccsd device send --to NOTIFICATION_KEY" reaches
// the other device of the group, which "listen --json" shows from the key.
func TestDeviceCommandsGroup(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	dir := t.TempDir()
	phone := []string{"--data", s.Data, "--state", filepath.Join(dir, "phone.json")}
	tablet := []string{"--data", s.Data, "--state", filepath.Join(dir, "tablet.json")}
	reg := func(state []string) string {
		return strings.TrimSpace(mustCCSD(t, append([]string{"device", "register", "--sender", s.Sender, "--app", "com.example.chat"}, state...)...))
	}
	key := s.createGroup("user-1", reg(phone), reg(tablet))
	mustCCSD(t, append([]string{"device", "send", "--to", key, "--collapse-key", "read", "--data", "read=m-7"}, phone...)...)
	out := mustCCSD(t, append([]string{"device", "listen", "--json", "--count", "1"}, tablet...)...)
	var got map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("listen --json printed %q: %v", out, err)
	}
	if got["from"] != key || got["collapse_key"] != "read" || got["data"].(map[string]any)["read"] != "m-7" {
		t.Fatalf("the tablet got %v, want the phone's group message from %s", got, key)
	}
}
