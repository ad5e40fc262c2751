// Package metrics is ccsd's observability endpoint: the Prometheus
// collector that reads the plain counters the serving packages keep
// (fanout.Router.Stats, xmpp.Server.Stats, bolt.DB.Stats, httpapi.API.Stats,
// limit.LoginRefusals) at scrape time, and Go's pprof handlers. It is the
// only package that imports github.com/prometheus/client_golang, so the
// message path never calls into Prometheus: each event there is one atomic
// add in its own package, and the cost of labels, descriptors and text
// encoding is paid per scrape. Every metric is listed in docs/metrics.md.
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ccsd/ccsd/fanout"
	"github.com/ccsd/ccsd/httpapi"
	"github.com/ccsd/ccsd/store/bolt"
	"github.com/ccsd/ccsd/xmpp"
)

// ListenerRefusals counts the connections a listener closed at accept, by
// the limit that closed them.
type ListenerRefusals struct {
	Global, PerAddr uint64
}

// Sources are the functions a scrape reads. Each returns a snapshot of
// counters its package keeps; a nil source is skipped (its metrics are
// absent), so a test or a partial wiring can give only some.
type Sources struct {
	Router     func() fanout.Stats
	AppServers func() xmpp.Stats // the app-server XMPP port
	Devices    func() xmpp.Stats // the device XMPP port
	Store      func() bolt.Stats
	// StoreErr is the store's LastCommitErr: non-nil while writes fail.
	StoreErr func() error
	API      func() httpapi.Stats
	// HTTPRefused counts the HTTPS listener's refusals at accept.
	HTTPRefused func() ListenerRefusals
	// LoginRefusals counts the failed-login budget's refusals, every port
	// together (limit.LoginRefusals.Load).
	LoginRefusals func() uint64
}

// Handler returns the GET /metrics handler: src's metrics plus Go's
// runtime and process collectors, in a registry of their own (never the
// global default one).
func Handler(src Sources) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		NewCollector(src),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError, Registry: reg})
}
