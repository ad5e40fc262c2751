package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ccsd/ccsd/internal/ccsdtest"
)

// The tests measure a real ccsd binary, built once, serving on loopback
// ports of a temporary data directory.
var (
	tmpDir  string
	ccsdBin string

	srvOnce sync.Once
	srv     *ccsdtest.Proc
	srvErr  error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ccsbench-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	tmpDir = dir
	if ccsdBin, err = ccsdtest.Build(dir, false); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	if srv != nil {
		if err := srv.Stop(syscall.SIGTERM); err != nil {
			fmt.Fprintln(os.Stderr, "stopping ccsd:", err)
			code = 1
		}
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// server returns the shared ccsd, starting it on first use.
func server(t *testing.T) *ccsdtest.Proc {
	t.Helper()
	// Subtests share the server and together exceed what one address and
	// one registration may do on a phone: a load test measures throughput,
	// not limits.
	srvOnce.Do(func() {
		srv, srvErr = ccsdtest.Start(ccsdBin, filepath.Join(tmpDir, "data"), "--drain-grace", "2s",
			"--checkin-burst", "0", "--register-burst", "0",
			"--downstream-rate", "0", "--upstream-rate", "0", "--max-queued-per-registration", "0")
	})
	if srvErr != nil {
		t.Fatal(srvErr)
	}
	return srv
}

// runBench runs ccsbench in-process and returns its exit code, report and
// stderr.
func runBench(t *testing.T, args ...string) (int, *report, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	code := run(ctx, append(args, "--json"), &out, &errb)
	if out.Len() == 0 {
		return code, nil, errb.String()
	}
	var r report
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("exit %d, JSON summary: %v\n%s\nstderr:\n%s", code, err, out.Bytes(), errb.String())
	}
	return code, &r, errb.String()
}

// checkClean checks a run in which everything must have gone through.
func checkClean(t *testing.T, code int, r *report, stderr string, messages, copies int) {
	t.Helper()
	if r == nil {
		t.Fatalf("exit %d and no summary; stderr:\n%s\nccsd:\n%s", code, stderr, srv.Logs())
	}
	if code != exitOK || !r.OK || !r.Complete {
		t.Errorf("exit %d, ok %v, complete %v, problems %v, errors %v", code, r.OK, r.Complete, r.Problems, r.Errors)
	}
	if r.Sent != int64(messages) || r.Accepted != int64(messages) || r.Nacked != 0 || len(r.Nacks) != 0 || r.Unanswered != 0 {
		t.Errorf("sent %d, accepted %d, nacked %d %v, unanswered %d; want %d accepted and no nack",
			r.Sent, r.Accepted, r.Nacked, r.Nacks, r.Unanswered, messages)
	}
	want := int64(messages * copies)
	if r.ExpectedCopies != want || r.Delivered != want || r.Missing != 0 || r.Unexpected != 0 {
		t.Errorf("expected %d, delivered %d, missing %d, unexpected %d; want %d delivered",
			r.ExpectedCopies, r.Delivered, r.Missing, r.Unexpected, want)
	}
	if r.AckLatency.N != messages || r.DeliveryLatency.N != messages*copies || r.AcceptPerSec <= 0 || r.DeliveriesPerSec <= 0 {
		t.Errorf("latency counts %d/%d, rates %.1f/%.1f", r.AckLatency.N, r.DeliveryLatency.N, r.AcceptPerSec, r.DeliveriesPerSec)
	}
	if r.AckLatency.P50 > r.AckLatency.P99 || r.AckLatency.P99 > r.AckLatency.Max {
		t.Errorf("latency percentiles out of order: %+v", r.AckLatency)
	}
	if r.Machine.NumCPU < 1 || r.Machine.GOOS == "" || r.Machine.GoVersion == "" {
		t.Errorf("machine %+v", r.Machine)
	}
	if r.Duplicates > 0 {
		// At-least-once allows them; they are reported, not failed.
		t.Logf("%s: %d duplicates", r.Scenario, r.Duplicates)
	}
	if t.Failed() {
		t.Logf("stderr:\n%s", stderr)
	}
}

// TestScenarios runs each scenario with small numbers against a real ccsd.
func TestScenarios(t *testing.T) {
	s := server(t)
	common := []string{"--data", s.Data, "--devices", "6", "--conns", "2", "--messages", "500", "--duration", "15s"}

	t.Run("downstream", func(t *testing.T) {
		code, r, stderr := runBench(t, common...)
		checkClean(t, code, r, stderr, 500, 1)
		if r != nil && r.Duplicates != 0 {
			t.Errorf("downstream duplicates %d on a run without reconnections", r.Duplicates)
		}
		if r != nil && (r.Server.PID != s.Info.PID || r.ServerCPUSeconds == nil) {
			t.Errorf("server pid %d (want %d), cpu %v", r.Server.PID, s.Info.PID, r.ServerCPUSeconds)
		}
	})
	t.Run("group", func(t *testing.T) {
		code, r, stderr := runBench(t, append(common, "--scenario", "group", "--group-size", "3")...)
		checkClean(t, code, r, stderr, 500, 3)
		if r != nil && (r.Group == nil || r.Group.Groups != 2 || r.Group.GroupSize != 3 || r.Group.AckSuccess != 1500 || r.Group.AckFailure != 0) {
			t.Errorf("group figures %+v", r.Group)
		}
	})
	t.Run("group-larger-than-devices", func(t *testing.T) {
		// Fewer devices than --group-size: one group of all of them.
		code, r, stderr := runBench(t, append(common, "--scenario", "group", "--messages", "100")...)
		checkClean(t, code, r, stderr, 100, 6)
		if r != nil && (r.Group == nil || r.Group.Groups != 1 || r.Group.GroupSize != 6) {
			t.Errorf("group figures %+v", r.Group)
		}
	})
	t.Run("upstream", func(t *testing.T) {
		code, r, stderr := runBench(t, append(common, "--scenario", "upstream")...)
		checkClean(t, code, r, stderr, 500, 1)
	})
	t.Run("queue", func(t *testing.T) {
		// The devices never log in: every message is acked (queued) and
		// none delivered, and the run completes without waiting for them.
		code, r, stderr := runBench(t, append(common, "--scenario", "queue")...)
		if r == nil {
			t.Fatalf("exit %d and no summary; stderr:\n%s", code, stderr)
		}
		if code != exitOK || !r.OK || !r.Complete || r.Accepted != 500 || r.Nacked != 0 ||
			r.Delivered != 0 || r.ExpectedCopies != 0 || r.Missing != 0 || r.ElapsedSeconds >= 15 {
			t.Errorf("exit %d, ok %v, complete %v, accepted %d, nacked %d, delivered %d of %d, %.1fs, problems %v\n%s",
				code, r.OK, r.Complete, r.Accepted, r.Nacked, r.Delivered, r.ExpectedCopies, r.ElapsedSeconds, r.Problems, stderr)
		}
	})
}

// TestExplicitAddresses runs without --data: addresses and CA on the
// command line.
func TestExplicitAddresses(t *testing.T) {
	s := server(t)
	code, r, stderr := runBench(t, "--xmpp-addr", s.Info.XMPPAddr, "--device-addr", s.Info.DeviceAddr,
		"--http-addr", s.Info.HTTPAddr, "--admin-addr", s.Info.AdminAddr, "--ca", filepath.Join(s.Data, "cert.pem"),
		"--devices", "3", "--conns", "1", "--messages", "200")
	checkClean(t, code, r, stderr, 200, 1)
	if r != nil && r.ServerCPUSeconds != nil {
		t.Errorf("server CPU reported without a known pid")
	}
}

// TestDurationCap: a run that cannot finish within --duration stops there
// and says so.
func TestDurationCap(t *testing.T) {
	s := server(t)
	start := time.Now()
	code, r, stderr := runBench(t, "--data", s.Data, "--devices", "2", "--conns", "1", "--messages", "1000000", "--duration", "300ms")
	if r == nil {
		t.Fatalf("exit %d, no summary\n%s", code, stderr)
	}
	if code != exitFail || r.OK || r.Complete || r.Sent == 0 || r.Sent == 1000000 {
		t.Errorf("exit %d, ok %v, complete %v, sent %d", code, r.OK, r.Complete, r.Sent)
	}
	if r.ElapsedSeconds > 2 || time.Since(start) > 15*time.Second {
		t.Errorf("measured %.2fs, whole run %v for a 300ms cap", r.ElapsedSeconds, time.Since(start))
	}
	if !strings.Contains(stderr, "--duration") {
		t.Errorf("stderr does not mention the cap:\n%s", stderr)
	}
}

// TestRefusesNonLoopback: addresses that are not loopback are refused
// before anything is sent, from flags and from run.json.
func TestRefusesNonLoopback(t *testing.T) {
	ca := filepath.Join(tmpDir, "none.pem")
	good := map[string]string{
		"--xmpp-addr": "127.0.0.1:5235", "--device-addr": "[::1]:5228",
		"--http-addr": "localhost:8443", "--admin-addr": "127.0.0.1:5280",
	}
	for flag, bad := range map[string]string{
		"--xmpp-addr":   "10.0.0.1:5235",
		"--device-addr": "gcm.googleapis.com:5228",
		"--http-addr":   ":8443",
		"--admin-addr":  "0.0.0.0:5280",
	} {
		args := []string{"--ca", ca}
		for f, a := range good {
			if f == flag {
				a = bad
			}
			args = append(args, f, a)
		}
		var out, errb bytes.Buffer
		start := time.Now()
		code := run(context.Background(), args, &out, &errb)
		if code != exitUsage || !strings.Contains(errb.String(), "not a loopback address") || out.Len() != 0 {
			t.Errorf("%s %s: exit %d, stdout %q, stderr %q", flag, bad, code, out.String(), errb.String())
		}
		if time.Since(start) > time.Second {
			t.Errorf("%s %s: refusing took %v", flag, bad, time.Since(start))
		}
	}

	// A run.json naming another machine is refused too.
	dir := t.TempDir()
	rj := `{"pid":1,"xmpp_addr":"192.0.2.7:5235","device_addr":"127.0.0.1:5228","http_addr":"127.0.0.1:8443","admin_addr":"127.0.0.1:5280"}`
	if err := os.WriteFile(filepath.Join(dir, "run.json"), []byte(rj), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"--data", dir}, &out, &errb); code != exitUsage || !strings.Contains(errb.String(), "192.0.2.7") {
		t.Errorf("run.json with a remote address: exit %d, stderr %q", code, errb.String())
	}

	// 127.0.0.x sources cannot reach ::1.
	var errSrc bytes.Buffer
	args := []string{"--ca", ca, "--source-addrs", "2"}
	for f, a := range good {
		args = append(args, f, a)
	}
	if code := run(context.Background(), args, &out, &errSrc); code != exitUsage || !strings.Contains(errSrc.String(), "IPv4 loopback") {
		t.Errorf("--source-addrs with ::1: exit %d, stderr %q", code, errSrc.String())
	}

	// And at connect time, whatever a name resolved to.
	c, err := loopbackDialer().Dial("tcp", "192.0.2.7:5235")
	if err == nil {
		c.Close()
		t.Fatal("loopbackDialer connected to 192.0.2.7")
	}
	if !strings.Contains(err.Error(), "not a loopback address") {
		t.Errorf("loopbackDialer: %v", err)
	}
}

// TestUsage: bad flags are usage errors.
func TestUsage(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"--scenario", "sideways", "--data", "x"},
		{"--data", filepath.Join(tmpDir, "no-such-dir")},
		{"extra"},
	} {
		var out, errb bytes.Buffer
		if code := run(context.Background(), args, &out, &errb); code != exitUsage || errb.Len() == 0 {
			t.Errorf("%q: exit %d, stderr %q", args, code, errb.String())
		}
	}
}

// TestUsageNew: the flags of the idle, login, rate and source-address
// options are checked before anything is dialed.
func TestUsageNew(t *testing.T) {
	addrs := []string{"--xmpp-addr", "127.0.0.1:1", "--device-addr", "127.0.0.1:2", "--http-addr", "127.0.0.1:3",
		"--admin-addr", "127.0.0.1:4", "--ca", filepath.Join(tmpDir, "none.pem")}
	for want, args := range map[string][]string{
		"--rate -1":           {"--rate", "-1"},
		"--rate NaN":          {"--rate", "NaN"},
		"not idle":            {"--scenario", "idle", "--rate", "10"},
		"--source-addrs 0":    {"--source-addrs", "0"},
		"must be at least":    {"--scenario", "login", "--devices", "2", "--conns", "4"},
		"want downstream, gr": {"--scenario", "bogus"},
	} {
		var out, errb bytes.Buffer
		if code := run(context.Background(), append(slices.Clone(addrs), args...), &out, &errb); code != exitUsage || !strings.Contains(errb.String(), want) {
			t.Errorf("%q: exit %d, stderr %q; want %q", args, code, errb.String(), want)
		}
	}
}

// TestReadElem: the stanza reader finds the gcm payload by namespace,
// whatever its prefix, and unescapes it.
func TestReadElem(t *testing.T) {
	in := `<message id="a1" type="normal"><data:gcm xmlns:data="google:mobile:data">{"a":"&lt;&amp;&gt;"}</data:gcm></message>` +
		` <message><gcm xmlns="other">x</gcm></message></stream:stream>`
	c := &xconn{dec: xml.NewDecoder(strings.NewReader(`<stream:stream xmlns:stream="http://etherx.jabber.org/streams">` + in))}
	if _, err := c.dec.Token(); err != nil {
		t.Fatal(err)
	}
	var st stanza
	if err := c.readElem(&st); err != nil || st.name != "message" || st.typ != "normal" || st.id != "a1" || !st.hasGCM || string(st.payload) != `{"a":"<&>"}` {
		t.Fatalf("first: %v %s", err, &st)
	}
	if err := c.readElem(&st); err != nil || st.hasGCM || string(st.text) != "x" {
		t.Fatalf("second: %v %s", err, &st)
	}
	if err := c.readElem(&st); err == nil {
		t.Fatal("no end of stream")
	}
}

// TestAppendGCM: what ccsbench writes round-trips through an XML decoder.
func TestAppendGCM(t *testing.T) {
	js := []byte(`{"message_id":"<&>\r","data":{"q":"'\""}}`)
	b := appendGCM(nil, `i"d<`, js)
	var v struct {
		ID  string `xml:"id,attr"`
		GCM string `xml:"google:mobile:data gcm"`
	}
	if err := xml.Unmarshal(b, &v); err != nil || v.ID != `i"d<` || v.GCM != string(js) {
		t.Fatalf("%s -> %v %+v", b, err, v)
	}
}

func TestSummarize(t *testing.T) {
	var ns []int64
	for i := 1; i <= 100; i++ {
		ns = append(ns, int64(i)*int64(time.Millisecond))
	}
	l := summarize(ns)
	if l.N != 100 || l.P50 != 50 || l.P90 != 90 || l.P99 != 99 || l.Max != 100 || l.Mean != 50.5 {
		t.Fatalf("%+v", l)
	}
	if l := summarize(nil); l.N != 0 {
		t.Fatalf("%+v", l)
	}
}
