package main

import (
	"github.com/ccsd/ccsd/internal/metrics"
)

// metricsSources tells /metrics where each count lives. Every source is a
// method value or a closure over the app, read at scrape time only.
func (a *app) metricsSources() metrics.Sources {
	return metrics.Sources{
		Router:     a.router.Stats,
		AppServers: a.appServers.Stats,
		Devices:    a.deviceServer.Stats,
		Store:      a.db.Stats,
		StoreErr:   a.db.LastCommitErr,
		API:        a.api.Stats,
		HTTPRefused: func() metrics.ListenerRefusals {
			return metrics.ListenerRefusals{Global: a.httpRefused.global.Load(), PerAddr: a.httpRefused.perAddr.Load()}
		},
		LoginRefusals: a.loginRefusals.Load,
	}
}
