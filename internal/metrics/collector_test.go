package metrics

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/ccsd/ccsd/ccs"
	"github.com/ccsd/ccsd/fanout"
	"github.com/ccsd/ccsd/httpapi"
	"github.com/ccsd/ccsd/internal/stats"
	"github.com/ccsd/ccsd/store"
	"github.com/ccsd/ccsd/store/bolt"
	"github.com/ccsd/ccsd/xmpp"
)

func codeIndex(t *testing.T, c ccs.Code) int {
	for i, code := range fanout.NackCodes {
		if code == c {
			return i
		}
	}
	t.Fatalf("code %s not in fanout.NackCodes", c)
	return -1
}

// fakeSources returns made-up stats, each value distinct, so that a metric
// reading the wrong field shows.
func fakeSources(t *testing.T, storeErr error) Sources {
	rs := fanout.Stats{
		DownstreamXMPP: 11, DownstreamHTTP: 12, Delivered: 13, DeviceAcks: 14,
		UpstreamAccepted: 15, UpstreamDelivered: 16, UpstreamAcks: 17, Receipts: 18,
		UpstreamRateRefused: 19, DownstreamRateRefused: 20, UpstreamQueueFull: 21,
		Bounces: [2]uint64{22, 23}, FastSent: 26, FastAcked: 27, FastWritten: 28,
	}
	for p := range rs.Nacks {
		rs.Nacks[p] = make([]uint64, len(fanout.NackCodes))
	}
	rs.Nacks[fanout.ToAppServer][codeIndex(t, ccs.CodeBadRegistration)] = 24
	rs.Nacks[fanout.ToDevice][codeIndex(t, ccs.CodeDeviceMessageRateExceeded)] = 25

	h := stats.NewHistogram(1, 10, 100)
	for _, v := range []uint64{1, 5, 7, 500} {
		h.Observe(v)
	}
	lat := stats.NewHistogram(1e6, 10e6)
	lat.Observe(2e6)
	return Sources{
		Router: func() fanout.Stats { return rs },
		AppServers: func() xmpp.Stats {
			return xmpp.Stats{Sessions: 2, LoginsOK: 31, LoginsFailed: 32, LoginsThrottled: 33, RefusedGlobal: 34, RefusedPerAddr: 35}
		},
		Devices: func() xmpp.Stats { return xmpp.Stats{Sessions: 7, LoginsOK: 41} },
		Store: func() bolt.Stats {
			return bolt.Stats{Commits: 51, Ops: 52, Failures: 53, WrittenBytes: 54, Batch: h.Snapshot(), CommitNanos: lat.Snapshot(),
				Upstream: store.QueueUsage{Messages: 55, Bytes: 56}}
		},
		StoreErr:      func() error { return storeErr },
		API:           func() httpapi.Stats { return httpapi.Stats{CheckinRefused: 61, RegisterRefused: 62} },
		HTTPRefused:   func() ListenerRefusals { return ListenerRefusals{Global: 71, PerAddr: 72} },
		LoginRefusals: func() uint64 { return 81 },
	}
}

// TestCollectorReadsEachField: every metric carries the value of the
// field it names, with the labels docs/metrics.md gives.
func TestCollectorReadsEachField(t *testing.T) {
	c := NewCollector(fakeSources(t, nil))
	want := map[string]float64{
		`ccsd_sessions{kind="app_server"}`:                                          2,
		`ccsd_sessions{kind="device"}`:                                              7,
		`ccsd_logins_total{kind="app_server",result="ok"}`:                          31,
		`ccsd_logins_total{kind="app_server",result="failed"}`:                      32,
		`ccsd_logins_total{kind="app_server",result="throttled"}`:                   33,
		`ccsd_logins_total{kind="device",result="ok"}`:                              41,
		`ccsd_connections_refused_total{limit="global",listener="app_server"}`:      34,
		`ccsd_connections_refused_total{limit="per_address",listener="app_server"}`: 35,
		`ccsd_connections_refused_total{limit="global",listener="http"}`:            71,
		`ccsd_connections_refused_total{limit="per_address",listener="http"}`:       72,
		`ccsd_downstream_accepted_total{api="xmpp"}`:                                11,
		`ccsd_downstream_accepted_total{api="http"}`:                                12,
		`ccsd_downstream_delivered_total`:                                           13,
		`ccsd_device_acks_total`:                                                    14,
		`ccsd_upstream_accepted_total`:                                              15,
		`ccsd_upstream_delivered_total`:                                             16,
		`ccsd_upstream_acks_total`:                                                  17,
		`ccsd_receipts_total`:                                                       18,
		`ccsd_downstream_fast_path_total{outcome="sent"}`:                           26,
		`ccsd_downstream_fast_path_total{outcome="acked"}`:                          27,
		`ccsd_downstream_fast_path_total{outcome="written"}`:                        28,
		`ccsd_nacks_total{code="BAD_REGISTRATION",peer="app_server"}`:               24,
		`ccsd_nacks_total{code="DEVICE_MESSAGE_RATE_EXCEEDED",peer="device"}`:       25,
		`ccsd_nacks_total{code="BAD_REGISTRATION",peer="device"}`:                   0,
		`ccsd_stanza_errors_total{peer="app_server"}`:                               22,
		`ccsd_stanza_errors_total{peer="device"}`:                                   23,
		`ccsd_ratelimit_refusals_total{limit="upstream_rate"}`:                      19,
		`ccsd_ratelimit_refusals_total{limit="downstream_rate"}`:                    20,
		`ccsd_ratelimit_refusals_total{limit="upstream_queue"}`:                     21,
		`ccsd_ratelimit_refusals_total{limit="checkin"}`:                            61,
		`ccsd_ratelimit_refusals_total{limit="register"}`:                           62,
		`ccsd_ratelimit_refusals_total{limit="login"}`:                              81,
		`ccsd_store_commits_total`:                                                  51,
		`ccsd_store_ops_total`:                                                      52,
		`ccsd_store_commit_failures_total`:                                          53,
		`ccsd_store_written_bytes_total`:                                            54,
		`ccsd_store_fsyncs_total`:                                                   102,
		`ccsd_upstream_queued_messages`:                                             55,
		`ccsd_upstream_queued_bytes`:                                                56,
		`ccsd_store_last_commit_failed`:                                             0,
	}
	got := gather(t, c)
	for k, v := range want {
		g, ok := got[k]
		if !ok {
			t.Errorf("%s missing", k)
			continue
		}
		if g != v {
			t.Errorf("%s = %v, want %v", k, g, v)
		}
	}
	// 9 codes x 2 peers, each present even at zero, so rate() works from
	// the first scrape.
	if n := countPrefix(got, "ccsd_nacks_total{"); n != 2*len(fanout.NackCodes) {
		t.Errorf("%d nack series, want %d", n, 2*len(fanout.NackCodes))
	}
	if got := gather(t, NewCollector(fakeSources(t, errors.New("disk full"))))["ccsd_store_last_commit_failed"]; got != 1 {
		t.Errorf("ccsd_store_last_commit_failed = %v after a failed commit, want 1", got)
	}
}

// TestCollectorHistograms: the per-bucket counts of a stats histogram
// become Prometheus's cumulative buckets, scaled to the metric's unit.
func TestCollectorHistograms(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewCollector(fakeSources(t, nil)))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	hists := map[string]*dto.Histogram{}
	for _, mf := range mfs {
		if mf.GetType() == dto.MetricType_HISTOGRAM {
			hists[mf.GetName()] = mf.GetMetric()[0].GetHistogram()
		}
	}
	b := hists["ccsd_store_commit_ops"]
	if b == nil || b.GetSampleCount() != 4 || b.GetSampleSum() != 513 {
		t.Fatalf("ccsd_store_commit_ops: %v", b)
	}
	wantCum := map[float64]uint64{1: 1, 10: 3, 100: 3}
	for _, bk := range b.GetBucket() {
		if wantCum[bk.GetUpperBound()] != bk.GetCumulativeCount() {
			t.Errorf("batch bucket le=%v: %d, want %d", bk.GetUpperBound(), bk.GetCumulativeCount(), wantCum[bk.GetUpperBound()])
		}
	}
	l := hists["ccsd_store_commit_duration_seconds"]
	if l == nil || l.GetSampleCount() != 1 || l.GetSampleSum() != 0.002 || l.GetBucket()[0].GetUpperBound() != 0.001 ||
		l.GetBucket()[0].GetCumulativeCount() != 0 || l.GetBucket()[1].GetCumulativeCount() != 1 {
		t.Fatalf("ccsd_store_commit_duration_seconds: %v", l)
	}
}

// TestCollectorPartialSources: a nil source leaves its metrics out and
// breaks nothing else.
func TestCollectorPartialSources(t *testing.T) {
	got := gather(t, NewCollector(Sources{LoginRefusals: func() uint64 { return 3 }}))
	if len(got) != 1 || got[`ccsd_ratelimit_refusals_total{limit="login"}`] != 3 {
		t.Fatalf("got %v", got)
	}
}

// TestHandlerServesTextFormat: the handler answers the text format with
// ccsd's metrics beside Go's and the process's.
func TestHandlerServesTextFormat(t *testing.T) {
	srv := httptest.NewServer(Handler(fakeSources(t, nil)))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	text := string(body)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("%d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	for _, want := range []string{
		"# HELP ccsd_device_acks_total ", "# TYPE ccsd_device_acks_total counter", "ccsd_device_acks_total 14\n",
		"# TYPE ccsd_store_commit_duration_seconds histogram", "go_goroutines ", "process_resident_memory_bytes ",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("no %q in\n%s", want, text)
		}
	}
}

// TestDebugServesPprof: the pprof mux answers its index and a profile.
func TestDebugServesPprof(t *testing.T) {
	srv := httptest.NewServer(Debug())
	defer srv.Close()
	for path, want := range map[string]string{"/debug/pprof/": "goroutine", "/debug/pprof/goroutine?debug=1": "goroutine profile:"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Errorf("GET %s: %d, no %q", path, resp.StatusCode, want)
		}
	}
}

// gather collects c into "name{labels}" -> value, for counters and gauges.
func gather(t *testing.T, c prometheus.Collector) map[string]float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	if n, err := testutil.GatherAndCount(reg); err != nil || n == 0 {
		t.Fatalf("gather: %d metrics, %v", n, err)
	}
	mfs, _ := reg.Gather()
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var v float64
			switch {
			case m.GetCounter() != nil:
				v = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				v = m.GetGauge().GetValue()
			default:
				continue
			}
			key := mf.GetName()
			if len(m.GetLabel()) > 0 {
				var ls []string
				for _, l := range m.GetLabel() {
					ls = append(ls, l.GetName()+`="`+l.GetValue()+`"`)
				}
				key += "{" + strings.Join(ls, ",") + "}"
			}
			out[key] = v
		}
	}
	return out
}

func countPrefix(m map[string]float64, prefix string) int {
	n := 0
	for k := range m {
		if strings.HasPrefix(k, prefix) {
			n++
		}
	}
	return n
}
