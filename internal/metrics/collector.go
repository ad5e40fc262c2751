package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ccsd/ccsd/fanout"
	"github.com/ccsd/ccsd/internal/stats"
	"github.com/ccsd/ccsd/store/bolt"
	"github.com/ccsd/ccsd/xmpp"
)

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

// The metrics, described once. docs/metrics.md lists them; keep both in step.
var (
	dSessions      = desc("ccsd_sessions", "XMPP sessions open now (logged in and bound), by kind: app_server or device.", "kind")
	dLogins        = desc("ccsd_logins_total", "XMPP SASL logins by kind and result: ok, failed (wrong credentials), throttled (refused by the failed-login budget; a wrong attempt that is throttled counts as failed too).", "kind", "result")
	dConnsRefused  = desc("ccsd_connections_refused_total", "Connections closed at accept by a limit, by listener (app_server, device, http) and limit (global: --max-conns; per_address: --max-unauth-per-addr on XMPP, --max-http-conns-per-addr on HTTPS).", "listener", "limit")
	dDownAccepted  = desc("ccsd_downstream_accepted_total", "Downstream messages accepted (acked to the app server), by API: xmpp or http. A message to a device group counts once.", "api")
	dDownDelivered = desc("ccsd_downstream_delivered_total", "Downstream message copies written to device sessions; a copy sent again on a later session counts again.")
	dDeviceAcks    = desc("ccsd_device_acks_total", "Device acks that matched a downstream copy in flight.")
	dUpAccepted    = desc("ccsd_upstream_accepted_total", "Device messages accepted (acked to the device): upstream messages and messages to the device's group.")
	dUpDelivered   = desc("ccsd_upstream_delivered_total", "Upstream messages and receipts written to app-server connections; a redelivery counts again.")
	dUpAcks        = desc("ccsd_upstream_acks_total", "App-server acks that matched an upstream message or receipt in flight.")
	dReceipts      = desc("ccsd_receipts_total", "Delivery receipts queued for app servers (device acks of messages that asked for one).")
	dFastPath      = desc("ccsd_downstream_fast_path_total", "Downstream copies sent at once to an online, caught-up device session, by outcome: sent (all of them), acked (acked before their queue write was due: never queued), written (queued after all).", "outcome")
	dTopicCopies   = desc("ccsd_topic_copies_total", "Device copies written to the queues by topic and condition fan-outs.")
	dTopicJobs     = desc("ccsd_topic_jobs", "Topic and condition messages accepted whose fan-out is unfinished (bounded per sender by --max-topic-jobs).")
	dNacks         = desc("ccsd_nacks_total", "Nacks sent, by peer (app_server: over XMPP or as an HTTP send result; device) and CCS error code.", "peer", "code")
	dStanzaErrors  = desc("ccsd_stanza_errors_total", "Stanzas bounced with a stanza error (not a CCS JSON message), by peer.", "peer")
	dRateRefused   = desc("ccsd_ratelimit_refusals_total", "Requests refused by a rate or size limit, by limit: checkin, register (per address), upstream_rate, downstream_rate (per registration), upstream_queue (a sender's upstream queue at its cap), login (the failed-login budget, every port).", "limit")
	dUpQueued      = desc("ccsd_upstream_queued_messages", "Upstream messages and receipts queued for every sender together.")
	dUpQueuedBytes = desc("ccsd_upstream_queued_bytes", "Bytes of the upstream messages and receipts queued for every sender together.")
	dCommits       = desc("ccsd_store_commits_total", "Store transactions committed by the group committer.")
	dCommitFails   = desc("ccsd_store_commit_failures_total", "Store commits that failed (every write in them was refused).")
	dOps           = desc("ccsd_store_ops_total", "Store write operations that succeeded.")
	dBatch         = desc("ccsd_store_commit_ops", "Write operations per committed transaction (the group-commit batch size).")
	dCommitSecs    = desc("ccsd_store_commit_duration_seconds", "Time one commit took: the bbolt transaction and its fsyncs.")
	dFsyncs        = desc("ccsd_store_fsyncs_total", "fdatasync calls of commits: bbolt syncs twice per commit (the pages, then the meta page).")
	dWritten       = desc("ccsd_store_written_bytes_total", "Bytes commits wrote to the database file: the pages bbolt allocated for them plus one meta page each.")
	dLastFailed    = desc("ccsd_store_last_commit_failed", "1 while the store's last commit failed (writes are being refused; /readyz says store), else 0.")
)

var allDescs = []*prometheus.Desc{
	dSessions, dLogins, dConnsRefused, dDownAccepted, dDownDelivered, dDeviceAcks,
	dUpAccepted, dUpDelivered, dUpAcks, dReceipts, dFastPath, dTopicCopies, dTopicJobs, dNacks, dStanzaErrors, dRateRefused,
	dUpQueued, dUpQueuedBytes, dCommits, dCommitFails, dOps, dBatch, dCommitSecs,
	dFsyncs, dWritten, dLastFailed,
}

// Collector is a prometheus.Collector over Sources: it reads them at
// scrape time and makes constant metrics of their values.
type Collector struct{ src Sources }

// NewCollector returns the collector of src.
func NewCollector(src Sources) *Collector { return &Collector{src: src} }

// Describe sends every metric's description.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range allDescs {
		ch <- d
	}
}

// Collect reads each source once and sends its metrics.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	s := c.src
	if s.AppServers != nil {
		collectXMPP(ch, "app_server", s.AppServers())
	}
	if s.Devices != nil {
		collectXMPP(ch, "device", s.Devices())
	}
	if s.HTTPRefused != nil {
		r := s.HTTPRefused()
		counter(ch, dConnsRefused, r.Global, "http", "global")
		counter(ch, dConnsRefused, r.PerAddr, "http", "per_address")
	}
	if s.Router != nil {
		collectRouter(ch, s.Router())
	}
	if s.API != nil {
		a := s.API()
		counter(ch, dRateRefused, a.CheckinRefused, "checkin")
		counter(ch, dRateRefused, a.RegisterRefused, "register")
	}
	if s.LoginRefusals != nil {
		counter(ch, dRateRefused, s.LoginRefusals(), "login")
	}
	if s.Store != nil {
		collectStore(ch, s.Store())
	}
	if s.StoreErr != nil {
		failed := 0.0
		if s.StoreErr() != nil {
			failed = 1
		}
		ch <- prometheus.MustNewConstMetric(dLastFailed, prometheus.GaugeValue, failed)
	}
}

func counter(ch chan<- prometheus.Metric, d *prometheus.Desc, v uint64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
}

func gauge(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

func collectXMPP(ch chan<- prometheus.Metric, kind string, st xmpp.Stats) {
	gauge(ch, dSessions, float64(st.Sessions), kind)
	counter(ch, dLogins, st.LoginsOK, kind, "ok")
	counter(ch, dLogins, st.LoginsFailed, kind, "failed")
	counter(ch, dLogins, st.LoginsThrottled, kind, "throttled")
	counter(ch, dConnsRefused, st.RefusedGlobal, kind, "global")
	counter(ch, dConnsRefused, st.RefusedPerAddr, kind, "per_address")
}

func collectRouter(ch chan<- prometheus.Metric, st fanout.Stats) {
	counter(ch, dDownAccepted, st.DownstreamXMPP, "xmpp")
	counter(ch, dDownAccepted, st.DownstreamHTTP, "http")
	counter(ch, dDownDelivered, st.Delivered)
	counter(ch, dDeviceAcks, st.DeviceAcks)
	counter(ch, dUpAccepted, st.UpstreamAccepted)
	counter(ch, dUpDelivered, st.UpstreamDelivered)
	counter(ch, dUpAcks, st.UpstreamAcks)
	counter(ch, dReceipts, st.Receipts)
	counter(ch, dFastPath, st.FastSent, "sent")
	counter(ch, dFastPath, st.FastAcked, "acked")
	counter(ch, dFastPath, st.FastWritten, "written")
	counter(ch, dTopicCopies, st.TopicCopies)
	gauge(ch, dTopicJobs, float64(st.TopicJobs))
	for _, p := range []fanout.Peer{fanout.ToAppServer, fanout.ToDevice} {
		for i, code := range fanout.NackCodes {
			if i < len(st.Nacks[p]) {
				counter(ch, dNacks, st.Nacks[p][i], p.String(), string(code))
			}
		}
		counter(ch, dStanzaErrors, st.Bounces[p], p.String())
	}
	counter(ch, dRateRefused, st.UpstreamRateRefused, "upstream_rate")
	counter(ch, dRateRefused, st.DownstreamRateRefused, "downstream_rate")
	counter(ch, dRateRefused, st.UpstreamQueueFull, "upstream_queue")
}

func collectStore(ch chan<- prometheus.Metric, st bolt.Stats) {
	counter(ch, dCommits, st.Commits)
	counter(ch, dCommitFails, st.Failures)
	counter(ch, dOps, st.Ops)
	counter(ch, dFsyncs, 2*st.Commits)
	counter(ch, dWritten, st.WrittenBytes)
	gauge(ch, dUpQueued, float64(st.Upstream.Messages))
	gauge(ch, dUpQueuedBytes, float64(st.Upstream.Bytes))
	ch <- histogram(dBatch, st.Batch, 1)
	ch <- histogram(dCommitSecs, st.CommitNanos, 1e-9)
}

// histogram converts a stats snapshot (per-bucket counts) into a constant
// Prometheus histogram (cumulative counts), scaling values by scale.
func histogram(d *prometheus.Desc, s stats.HistogramSnapshot, scale float64) prometheus.Metric {
	buckets := make(map[float64]uint64, len(s.Bounds))
	var cum uint64
	for i, b := range s.Bounds {
		cum += s.Counts[i]
		buckets[float64(b)*scale] = cum
	}
	return prometheus.MustNewConstHistogram(d, s.Count, float64(s.Sum)*scale, buckets)
}
