package main

import (
	"flag"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/ccsd/ccsd/internal/limit"
	"github.com/ccsd/ccsd/xmpp"
)

// registerLimitFlags adds the connection and failed-login limit flags.
func registerLimitFlags(fs *flag.FlagSet, c *serveConfig) {
	fs.DurationVar(&c.handshakeTimeout, "tls-handshake-timeout", xmpp.DefaultHandshakeTimeout, "XMPP ports: time a new connection gets to complete its TLS handshake (the XMPP negotiation then gets 20s more)")
	fs.IntVar(&c.maxUnauthPerAddr, "max-unauth-per-addr", xmpp.DefaultMaxUnauthPerAddr, "XMPP ports: connections of one source address (IPv4, IPv6 /64) not yet logged in, per port; past it new ones are closed at once (-1: no limit)")
	fs.IntVar(&c.maxHTTPConnsPerIP, "max-http-conns-per-addr", 256, "HTTPS: open connections of one source address (IPv4, IPv6 /64); past it new ones are closed at once (-1: no limit)")
	fs.IntVar(&c.maxConns, "max-conns", 0, "open connections of the XMPP and HTTPS listeners together; past it new ones are closed at once (0: the open-file limit minus 1/8, at least 256, for the store and admin; -1: no limit)")
	fs.IntVar(&c.loginFailsPerAddr, "login-failures-per-addr", limit.DefaultLoginFailuresPerAddr, "failed logins (XMPP SASL, HTTP API keys) a minute one source address may make; past it its attempts are refused (temporary-auth-failure, HTTP 429) (-1: no limit)")
	fs.IntVar(&c.loginFailsPerIdent, "login-failures-per-identity", limit.DefaultLoginFailuresPerIdentity, "failed logins a minute at one sender or device id; past it attempts at it are held 1s and wrong ones refused, right ones still succeed (-1: no limit)")
}

// checkLimits validates the limit flags: positive or -1 (no limit); only
// --max-conns also takes 0 (derived from the open-file limit).
func (c *serveConfig) checkLimits() error {
	if c.handshakeTimeout <= 0 {
		return fmt.Errorf("--tls-handshake-timeout %v: must be positive", c.handshakeTimeout)
	}
	for name, v := range map[string]int{
		"--max-unauth-per-addr": c.maxUnauthPerAddr, "--max-http-conns-per-addr": c.maxHTTPConnsPerIP,
		"--login-failures-per-addr": c.loginFailsPerAddr, "--login-failures-per-identity": c.loginFailsPerIdent,
		"--max-conns": c.maxConns,
	} {
		if v < -1 || v == 0 && name != "--max-conns" {
			return fmt.Errorf("%s %d: must be positive, or -1 for no limit", name, v)
		}
	}
	return nil
}

// maxConnsFromLimit derives --max-conns 0 from the soft descriptor limit:
// what is left after a reserve of 1/8 (at least 256, at most half) for the
// store, logs, the admin listener and sockets being closed. 0 (no limit)
// when the descriptor limit is unknown or unlimited.
func maxConnsFromLimit(soft uint64) int {
	if soft == 0 || soft > 1<<30 {
		return 0
	}
	reserve := max(soft/8, min(256, soft/2))
	return int(soft - reserve)
}

// globalConns returns the process-wide connection count of the public
// listeners (nil: unlimited) and the limit it enforces; flag 0 derives it
// from nofile, the soft open-file limit in force (0: unknown).
func globalConns(flag int, nofile uint64) (*limit.Count, int) {
	n := flag
	if n == 0 {
		n = maxConnsFromLimit(nofile)
	}
	if n <= 0 {
		return nil, 0
	}
	return limit.NewCount(n), n
}

// limitHTTP wraps the HTTPS listener in the global count and the
// per-address count of open connections. HTTP has no unauthenticated phase
// to count: an idle or slow connection is bounded by http.Server's
// ReadHeaderTimeout (which also bounds its TLS handshake) and IdleTimeout.
// Refusals are counted in refused (for /metrics) and logged at most once a
// minute.
func limitHTTP(l net.Listener, global *limit.Count, perAddr int, refused *httpRefusals, log zerolog.Logger) net.Listener {
	ll := limit.NewListener(l, global, limit.NewCount(perAddr))
	warn := limit.NewRate(1, time.Minute, 1)
	ll.OnRefuse = func(remote net.Addr, reason string) {
		refused.count(reason)
		if warn.Allow("") {
			log.Warn().Str("remote", remote.String()).Str("reason", reason).
				Uint64("refused_total", ll.Refused.Load()).Msg("HTTPS connection refused at accept")
		}
	}
	return ll
}

// httpRefusals counts the HTTPS listener's refusals at accept by limit.
type httpRefusals struct{ global, perAddr atomic.Uint64 }

// count records one refusal for limit.Listener's reason.
func (r *httpRefusals) count(reason string) {
	if reason == "global" {
		r.global.Add(1)
	} else {
		r.perAddr.Add(1)
	}
}
