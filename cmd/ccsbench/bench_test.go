package main

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ccsd/ccsd/internal/ccsdtest"
)

// TestIdle holds sessions and checks what the idle scenario reports: every
// session held, and a positive, finite RSS per session from /proc. (This
// file sorts before main_test.go, so the shared server is still small when
// it runs and the sessions' memory shows in its RSS.)
func TestIdle(t *testing.T) {
	s := server(t)
	code, r, stderr := runBench(t, "--data", s.Data, "--scenario", "idle", "--devices", "300", "--conns", "2", "--duration", "1s")
	if r == nil {
		t.Fatalf("exit %d and no summary; stderr:\n%s", code, stderr)
	}
	if code != exitOK || !r.OK || r.Idle == nil {
		t.Fatalf("exit %d, ok %v, problems %v, errors %v, idle %+v\n%s", code, r.OK, r.Problems, r.Errors, r.Idle, stderr)
	}
	ir := r.Idle
	if ir.Sessions != 300 || ir.Held != 300 || ir.AppConns != 2 || ir.HoldSeconds < 1 || ir.ConnectPerSec <= 0 {
		t.Errorf("idle %+v", ir)
	}
	if ir.RSSPerSession == nil || ir.RSSBefore == nil || ir.RSSAfter == nil {
		t.Fatalf("no RSS figures with --data: %+v", ir)
	}
	per := *ir.RSSPerSession
	if per <= 0 || math.IsInf(per, 0) || per > 1<<20 || *ir.RSSAfter <= *ir.RSSBefore {
		t.Errorf("RSS %d -> %d, %.1f B per session", *ir.RSSBefore, *ir.RSSAfter, per)
	}
	// With a ccsd that serves /metrics the heap and goroutines come too.
	if ir.HeapPerSession != nil && (*ir.HeapPerSession <= 0 || ir.HeapBefore == nil) {
		t.Errorf("heap per session %v", *ir.HeapPerSession)
	}
	if ir.GoroutinesPerSession != nil && *ir.GoroutinesPerSession <= 0 {
		t.Errorf("goroutines per session %v", *ir.GoroutinesPerSession)
	}
	if r.ServerCPUSeconds == nil || r.Server.PID != s.Info.PID {
		t.Errorf("server pid %d (want %d), cpu %v", r.Server.PID, s.Info.PID, r.ServerCPUSeconds)
	}
	if ir.ClientRSSPerSession == nil || ir.ClientFileLimit == 0 || len(r.Warnings) != 0 {
		t.Errorf("client RSS per session %v, file limit %d, warnings %v", ir.ClientRSSPerSession, ir.ClientFileLimit, r.Warnings)
	}
	t.Logf("%d sessions: RSS %.1f KiB per session", ir.Held, per/1024)
}

// openCount counts ccsd's "connection open" log lines (one per XMPP
// session past negotiation) and returns them by remote IP.
func openCount(logs string) (int, map[string]int) {
	re := regexp.MustCompile(`"remote":"([0-9.]+):[0-9]+"[^\n]*"message":"xmpp: connection open"|"message":"xmpp: connection open"[^\n]*"remote":"([0-9.]+):[0-9]+"`)
	ips := map[string]int{}
	n := 0
	for _, m := range re.FindAllStringSubmatch(logs, -1) {
		n++
		ips[m[1]+m[2]]++
	}
	return n, ips
}

// TestLogin runs the login scenario: every login counted is a session
// ccsd opened, none failed, and the figures agree with one another.
func TestLogin(t *testing.T) {
	s := server(t)
	before, _ := openCount(s.Logs())
	page := filepath.Join(t.TempDir(), "login.html")
	code, r, stderr := runBench(t, "--data", s.Data, "--scenario", "login", "--devices", "8", "--conns", "4", "--duration", "1s", "--html", page)
	if r == nil {
		t.Fatalf("exit %d and no summary; stderr:\n%s", code, stderr)
	}
	lr := r.Login
	if code != exitOK || !r.OK || lr == nil {
		t.Fatalf("exit %d, ok %v, problems %v, errors %v, login %+v", code, r.OK, r.Problems, r.Errors, lr)
	}
	if lr.Logins <= 0 || lr.Failures != 0 || lr.Attempts != lr.Logins || lr.Dialers != 4 || lr.PerSec <= 0 {
		t.Errorf("login %+v", lr)
	}
	if lr.Latency.N != int(lr.Logins) || lr.Latency.P50 <= 0 || lr.Latency.P50 > lr.Latency.Max {
		t.Errorf("latency %+v for %d logins", lr.Latency, lr.Logins)
	}
	var inTimeline int64
	for _, sec := range r.Timeline {
		inTimeline += sec.Logins
	}
	if inTimeline != lr.Logins {
		t.Errorf("timeline counts %d logins, summary %d", inTimeline, lr.Logins)
	}
	if lr.ServerCPUMsPerLogin == nil || *lr.ServerCPUMsPerLogin <= 0 || r.ServerCPUSeconds == nil {
		t.Errorf("server CPU per login %v, server CPU %v", lr.ServerCPUMsPerLogin, r.ServerCPUSeconds)
	}
	checkHTML(t, page, 3)
	// ccsd logs each session it opened: at least every login counted,
	// at most those plus the attempts cut at the end.
	var opened int
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, _ := openCount(s.Logs())
		if opened = n - before; int64(opened) >= lr.Logins || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if int64(opened) < lr.Logins || int64(opened) > lr.Logins+lr.Cut {
		t.Errorf("ccsd opened %d sessions for %d logins (%d cut)", opened, lr.Logins, lr.Cut)
	}
}

// TestRate: with --rate the senders hold to the offered load. At 200/s,
// 400 messages cannot be sent in less than the 1.995 s the schedule takes
// for the last one; the achieved rate is within a generous band.
func TestRate(t *testing.T) {
	s := server(t)
	for _, sc := range []string{"downstream", "upstream"} {
		t.Run(sc, func(t *testing.T) {
			page := filepath.Join(t.TempDir(), sc+".html")
			code, r, stderr := runBench(t, "--data", s.Data, "--scenario", sc, "--devices", "4", "--conns", "2",
				"--messages", "400", "--rate", "200", "--duration", "20s", "--html", page)
			checkClean(t, code, r, stderr, 400, 1)
			if r == nil {
				return
			}
			if r.OfferedPerSec != 200 || r.Config.Rate != 200 {
				t.Errorf("offered %v, config rate %v", r.OfferedPerSec, r.Config.Rate)
			}
			if r.SentPerSec < 100 || r.SentPerSec > 300 || r.AcceptPerSec > 300 {
				t.Errorf("offered 200/s: sent %.1f/s, accepted %.1f/s", r.SentPerSec, r.AcceptPerSec)
			}
			if r.ElapsedSeconds < 1.9 {
				t.Errorf("400 messages at 200/s done in %.2fs", r.ElapsedSeconds)
			}
			var sent, acc int64
			for _, sec := range r.Timeline {
				sent += sec.Sent
				acc += sec.Accepted
			}
			if len(r.Timeline) < 2 || sent != 400 || acc != 400 {
				t.Errorf("timeline: %d seconds, %d sent, %d accepted", len(r.Timeline), sent, acc)
			}
			checkHTML(t, page, 7)
			if strings.Contains(stderr, "\r") {
				t.Errorf("progress line written to a stderr that is not a terminal: %q", stderr)
			}
		})
	}
}

// TestSourceAddrs: on a server whose per-address checkin and register
// limits are low, --source-addrs spreads the devices over enough addresses
// that the limits are not hit, and ccsd sees sessions from each address;
// the same run from one address is refused by the limit.
func TestSourceAddrs(t *testing.T) {
	p, err := ccsdtest.Start(ccsdBin, filepath.Join(t.TempDir(), "data"), "--drain-grace", "1s",
		"--checkin-burst", "8", "--checkin-interval", "1h", "--register-burst", "8", "--register-interval", "1h",
		"--downstream-rate", "0", "--upstream-rate", "0", "--max-queued-per-registration", "0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop(syscall.SIGTERM) })

	args := []string{"--data", p.Data, "--devices", "24", "--conns", "2", "--messages", "200"}
	code, r, stderr := runBench(t, append(args, "--source-addrs", "4")...)
	checkClean(t, code, r, stderr, 200, 1)
	if r != nil && r.Config.SourceAddrs != 4 {
		t.Errorf("config source_addrs %d", r.Config.SourceAddrs)
	}
	_, ips := openCount(p.Logs())
	for i := range 4 {
		ip := sourceAddr(i).String()
		if ips[ip] == 0 {
			t.Errorf("ccsd saw no session from %s: %v", ip, ips)
		}
	}

	// From 127.0.0.1 alone the 24 checkins exceed the burst of 8.
	code, r, stderr = runBench(t, args...)
	if code != exitFail || r != nil || !strings.Contains(stderr, "429") || !strings.Contains(stderr, "--source-addrs N") {
		t.Errorf("one address: exit %d, report %v, stderr %s", code, r != nil, stderr)
	}
}

// TestLive: the progress line rewrites itself with a carriage return,
// log lines erase it first, and stop leaves the line clean.
func TestLive(t *testing.T) {
	var mu syncBuffer
	l := &live{w: &mu, on: true, interval: 5 * time.Millisecond}
	stop := l.every(func() string { return "progress 42" })
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(mu.String(), "progress 42") && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	l.logf("a log line\n")
	stop()
	out := mu.String()
	if !strings.HasPrefix(out, "\r\x1b[Kprogress 42") || !strings.Contains(out, "progress 42\r\x1b[Ka log line\n") {
		t.Errorf("output %q", out)
	}
	if !strings.HasSuffix(out, "\r\x1b[K") && !strings.HasSuffix(out, "a log line\n") {
		t.Errorf("not erased at the end: %q", out)
	}

	off := newLive(&mu)
	if off.on || isTerminal(&bytes.Buffer{}) {
		t.Error("a buffer is taken for a terminal")
	}
}

// TestParseMetrics reads unlabelled samples of a Prometheus exposition and
// the idle figures computed from two samples.
func TestParseMetrics(t *testing.T) {
	m := parseMetrics([]byte("# HELP go_goroutines x\n# TYPE go_goroutines gauge\ngo_goroutines 12\n" +
		"go_memstats_heap_alloc_bytes 1.5e+06\nccsd_sessions{kind=\"device\"} 3\nbad line\n"))
	if len(m) != 2 || m["go_goroutines"] != 12 || m["go_memstats_heap_alloc_bytes"] != 1.5e6 {
		t.Fatalf("%v", m)
	}
	ir := &idleReport{Sessions: 10}
	ir.fill(serverSample{rss: 1000, rssOK: true, metrics: m},
		serverSample{rss: 21480, rssOK: true, metrics: map[string]float64{"go_goroutines": 32, "go_memstats_heap_alloc_bytes": 1.6e6}})
	if ir.RSSPerSession == nil || *ir.RSSPerSession != 2048 || *ir.GoroutinesPerSession != 2 || *ir.HeapPerSession != 1e4 {
		t.Fatalf("%+v", ir)
	}
	ir = &idleReport{Sessions: 10}
	ir.fill(serverSample{}, serverSample{})
	if ir.RSSPerSession != nil || ir.HeapPerSession != nil || ir.GoroutinesPerSession != nil {
		t.Fatalf("figures without samples: %+v", ir)
	}
}

// TestPacer: messages are due at start + seq/rate; rate 0 never waits.
func TestPacer(t *testing.T) {
	start := time.Now()
	p := newPacer(start, 1000)
	defer p.stop()
	if got := p.due(500).Sub(start); got != 500*time.Millisecond {
		t.Errorf("due(500) at 1000/s: %v", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if p.wait(ctx, 1_000_000) {
		t.Error("wait returned true on a done context")
	}
	if !newPacer(start, 0).wait(context.Background(), 1_000_000) {
		t.Error("unpaced wait refused")
	}
}

// syncBuffer is a bytes.Buffer safe for the progress goroutine.
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

// checkHTML checks an --html page: well-formed XML, the wanted number of
// chart lines, and nothing that loads from elsewhere or runs.
func checkHTML(t *testing.T, file string, lines int) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(bytes.NewReader(b))
	polylines, svgs := 0, 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("page is not well-formed: %v\n%s", err, b)
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		switch se.Name.Local {
		case "polyline":
			polylines++
		case "svg":
			svgs++
		case "script", "link", "img", "iframe", "object", "style":
			t.Errorf("page has a <%s> element", se.Name.Local)
		}
		for _, a := range se.Attr {
			if a.Name.Local == "src" || a.Name.Local == "href" {
				t.Errorf("page loads %s=%q", a.Name.Local, a.Value)
			}
		}
	}
	if polylines != lines || svgs != 2 {
		t.Errorf("page has %d charts with %d lines; want 2 with %d", svgs, polylines, lines)
	}
	if !bytes.Contains(b, []byte("ccsbench ")) || !bytes.Contains(b, []byte("OK")) {
		t.Errorf("page lacks the summary")
	}
}

// TestTextSummaries: the idle and login scenarios' text summaries say what
// they measured; without --data ccsd's memory and CPU are unknown, and
// said to be.
func TestTextSummaries(t *testing.T) {
	s := server(t)
	explicit := []string{"--xmpp-addr", s.Info.XMPPAddr, "--device-addr", s.Info.DeviceAddr,
		"--http-addr", s.Info.HTTPAddr, "--admin-addr", s.Info.AdminAddr, "--ca", filepath.Join(s.Data, "cert.pem")}
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"--data", s.Data, "--scenario", "idle", "--devices", "5", "--conns", "1", "--duration", "200ms"},
			[]string{"hold: 5 of 5 sessions held", "KiB per session", "\nOK\n"}},
		{append([]string{"--scenario", "idle", "--devices", "3", "--conns", "1", "--duration", "200ms"}, explicit...),
			[]string{"hold: 3 of 3 sessions held", "ccsd RSS: unknown", "\nOK\n"}},
		{[]string{"--data", s.Data, "--scenario", "login", "--devices", "2", "--conns", "2", "--duration", "300ms", "--source-addrs", "2"},
			[]string{"from 2 source addresses 127.0.0.1..127.0.0.2", "cpu per login: ccsd ", " ms, ccsbench", "\nOK\n"}},
		{append([]string{"--scenario", "login", "--devices", "2", "--conns", "2", "--duration", "300ms"}, explicit...),
			[]string{"cpu per login: ccsd unknown", "\nOK\n"}},
	} {
		var out, errb bytes.Buffer
		code := run(context.Background(), c.args, &out, &errb)
		for _, w := range c.want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("%q: exit %d, no %q in\n%s\nstderr:\n%s", c.args, code, w, out.String(), errb.String())
			}
		}
		if code != exitOK {
			t.Errorf("%q: exit %d", c.args, code)
		}
	}
}

// TestMetricsEndpoint: the figures come from an admin endpoint that
// serves /metrics; one without (404, or not the exposition format) gives
// none, and the idle scenario then reports the heap as unknown.
func TestMetricsEndpoint(t *testing.T) {
	var gcs atomic.Int64
	with := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/debug/pprof/heap" && r.URL.Query().Get("gc") == "1":
			gcs.Add(1)
		case r.URL.Path == "/metrics":
			fmt.Fprint(w, "# TYPE go_goroutines gauge\ngo_goroutines 7\ngo_memstats_heap_alloc_bytes 4096\n")
		default:
			http.NotFound(w, r)
		}
	}))
	defer with.Close()
	without := httptest.NewServer(http.NotFoundHandler())
	defer without.Close()
	html := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "<html>hello</html>") }))
	defer html.Close()

	api := func(s *httptest.Server) *httpAPI {
		return newHTTPAPI("127.0.0.1:1", s.Listener.Addr().String(), nil, newDialPool(1), 1)
	}
	if m := api(with).metrics(context.Background()); m["go_goroutines"] != 7 || m["go_memstats_heap_alloc_bytes"] != 4096 {
		t.Errorf("metrics %v", m)
	}
	if !api(with).collect(context.Background()) || gcs.Load() != 1 {
		t.Errorf("collect: %d collections asked", gcs.Load())
	}
	for _, s := range []*httptest.Server{without, html} {
		if m := api(s).metrics(context.Background()); m != nil {
			t.Errorf("metrics from a server without them: %v", m)
		}
	}
	if api(without).collect(context.Background()) {
		t.Error("collect reported success without pprof")
	}
}

// TestHTTPSTurnPerEndpoint: requests that alternate between endpoints (a
// checkin, then its register3) still spread each endpoint over every
// source address, so none meets ccsd's per-address limit early.
func TestHTTPSTurnPerEndpoint(t *testing.T) {
	h := &httpAPI{}
	for range 4 {
		h.tlsCls = append(h.tlsCls, &http.Client{})
	}
	seen := map[int]map[*http.Client]int{epCheckin: {}, epRegister: {}}
	for range 8 {
		seen[epCheckin][h.https(epCheckin)]++
		seen[epRegister][h.https(epRegister)]++
	}
	for ep, by := range seen {
		if len(by) != 4 {
			t.Errorf("endpoint %d used %d of 4 source addresses: %v", ep, len(by), by)
		}
	}
}
