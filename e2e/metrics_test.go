package e2e

import (
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape is one GET /metrics on the admin port, as "name{l="v",...}" ->
// value for counters and gauges, and "name_count" for histograms.
func (s *server) scrape() map[string]float64 {
	s.t.Helper()
	resp, err := http.Get("http://" + s.Info.AdminAddr + "/metrics")
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		s.t.Fatalf("GET /metrics: %s %s", resp.Status, b)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		s.t.Fatalf("parse /metrics: %v", err)
	}
	out := map[string]float64{}
	for name, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := name + labelString(m.GetLabel())
			switch {
			case m.GetCounter() != nil:
				out[key] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				out[key] = m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				out[name+"_count"] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}

func labelString(ls []*dto.LabelPair) string {
	if len(ls) == 0 {
		return ""
	}
	parts := make([]string, 0, len(ls))
	for _, l := range ls {
		parts = append(parts, l.GetName()+`="`+l.GetValue()+`"`)
	}
	sort.Strings(parts)
	return "{" + strings.Join(parts, ",") + "}"
}

// deltas reports how far each wanted metric moved from before to after
// and whether that is exactly the wanted amount.
func deltas(before, after map[string]float64, want map[string]float64) error {
	var bad []string
	for k, w := range want {
		a, ok := after[k]
		if !ok {
			bad = append(bad, k+" missing")
			continue
		}
		if d := a - before[k]; d != w {
			bad = append(bad, fmt.Sprintf("%s moved %v, want %v", k, d, w))
		}
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		return fmt.Errorf("%s", strings.Join(bad, "; "))
	}
	return nil
}

// TestMetricsCountOneMessage: one message app server -> device -> device
// ack -> receipt -> app-server ack moves each message counter of /metrics
// by exactly one, and nothing else that counts refusals or nacks.
func TestMetricsCountOneMessage(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	d := s.checkin()
	reg := s.register(d, s.Sender, "com.example.chat")
	app := s.appServer()
	dev := s.deviceConn(d)
	checkFor(t, wait, 20*time.Millisecond, func() error {
		m := s.scrape()
		if m[`ccsd_sessions{kind="app_server"}`] != 1 || m[`ccsd_sessions{kind="device"}`] != 1 {
			return fmt.Errorf("sessions app_server %v device %v, want 1 each", m[`ccsd_sessions{kind="app_server"}`], m[`ccsd_sessions{kind="device"}`])
		}
		return nil
	})
	before := s.scrape()
	for kind, want := range map[string]float64{"app_server": 1, "device": 1} {
		if got := before[`ccsd_logins_total{kind="`+kind+`",result="ok"}`]; got != want {
			t.Errorf("%s logins ok %v, want %v", kind, got, want)
		}
	}

	app.send(`{"to":"` + reg + `","message_id":"m-1","delivery_receipt_requested":true,"data":{"k":"v"}}`)
	if ack := app.expect(wait); ack.str("message_type") != "ack" {
		t.Fatalf("ack: %v", ack.json)
	}
	if got := dev.expect(wait); got.str("message_id") != "m-1" {
		t.Fatalf("device copy: %v", got.json)
	}
	dev.ack("m-1")
	if r := app.expect(wait); r.str("message_type") != "receipt" {
		t.Fatalf("receipt: %v", r.json)
	}
	app.send(`{"to":"gcm.googleapis.com","message_id":"dr2:m-1","message_type":"ack"}`)

	want := map[string]float64{
		`ccsd_downstream_accepted_total{api="xmpp"}`:                  1,
		`ccsd_downstream_accepted_total{api="http"}`:                  0,
		`ccsd_downstream_delivered_total`:                             1,
		`ccsd_device_acks_total`:                                      1,
		`ccsd_receipts_total`:                                         1,
		`ccsd_upstream_delivered_total`:                               1,
		`ccsd_upstream_acks_total`:                                    1,
		`ccsd_upstream_accepted_total`:                                0,
		`ccsd_nacks_total{code="BAD_REGISTRATION",peer="app_server"}`: 0,
		`ccsd_stanza_errors_total{peer="app_server"}`:                 0,
		`ccsd_ratelimit_refusals_total{limit="downstream_rate"}`:      0,
		`ccsd_sessions{kind="app_server"}`:                            0,
		`ccsd_sessions{kind="device"}`:                                0,
	}
	var after map[string]float64
	checkFor(t, wait, 20*time.Millisecond, func() error {
		after = s.scrape()
		return deltas(before, after, want)
	})
	// The receipt is acked by the app server: its delete is committed in
	// the background; wait for the queue to be empty again.
	checkFor(t, wait, 20*time.Millisecond, func() error {
		after = s.scrape()
		if q := after["ccsd_upstream_queued_messages"]; q != 0 {
			return fmt.Errorf("%v upstream messages queued, want 0", q)
		}
		return nil
	})
	// Three writes at least (enqueue; ack + receipt; the receipt's ack),
	// each counted in its commit and in both histograms.
	if ops := after["ccsd_store_ops_total"] - before["ccsd_store_ops_total"]; ops < 3 {
		t.Errorf("store ops moved %v, want at least 3", ops)
	}
	// A background commit (a sweep) between two reads of one scrape would
	// skew them by one: poll for a consistent scrape.
	checkFor(t, wait, 20*time.Millisecond, func() error {
		m := s.scrape()
		commits := m["ccsd_store_commits_total"]
		if commits < 1 || m["ccsd_store_commit_ops_count"] != commits || m["ccsd_store_commit_duration_seconds_count"] != commits ||
			m["ccsd_store_fsyncs_total"] != 2*commits || m["ccsd_store_written_bytes_total"] <= before["ccsd_store_written_bytes_total"] {
			return fmt.Errorf("store: commits %v, batch count %v, latency count %v, fsyncs %v, bytes %v -> %v", commits,
				m["ccsd_store_commit_ops_count"], m["ccsd_store_commit_duration_seconds_count"], m["ccsd_store_fsyncs_total"],
				before["ccsd_store_written_bytes_total"], m["ccsd_store_written_bytes_total"])
		}
		return nil
	})
	if after["ccsd_store_last_commit_failed"] != 0 || after["go_goroutines"] == 0 || after["process_resident_memory_bytes"] == 0 {
		t.Errorf("last commit failed %v, go_goroutines %v, process_resident_memory_bytes %v",
			after["ccsd_store_last_commit_failed"], after["go_goroutines"], after["process_resident_memory_bytes"])
	}
}

// TestPprofOnAdminOnly: /debug/pprof/ answers on the loopback admin port
// and is 404 on the public HTTPS port, as is /metrics.
func TestPprofOnAdminOnly(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	if code, body := s.adminDo("GET", "/debug/pprof/", ""); code != 200 || !strings.Contains(body, "goroutine") {
		t.Errorf("admin /debug/pprof/: %d %.200s", code, body)
	}
	if code, body := s.adminDo("GET", "/debug/pprof/heap?debug=1", ""); code != 200 || !strings.Contains(body, "heap profile") {
		t.Errorf("admin /debug/pprof/heap: %d %.200s", code, body)
	}
	if code, _ := s.adminDo("GET", "/debug/pprof/", "evil.example"); code != http.StatusMisdirectedRequest {
		t.Errorf("admin /debug/pprof/ for a foreign Host: %d, want 421", code)
	}
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap", "/debug/pprof/cmdline", "/metrics"} {
		resp, err := s.http.Get("https://" + s.Info.HTTPAddr + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("public %s: %d, want 404", path, resp.StatusCode)
		}
	}
}
