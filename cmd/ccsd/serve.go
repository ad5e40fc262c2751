package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/ccsd/ccsd/fanout"
)

// fcmDomain is always accepted besides --domain.
const fcmDomain = "fcm.googleapis.com"

// serveConfig holds the flags of "ccsd serve".
type serveConfig struct {
	data            string
	xmppAddr        string
	deviceAddr      string
	httpAddr        string
	adminAddr       string
	domain          string
	tlsCert         string
	tlsKey          string
	maxGroupMembers int
	drainGrace      time.Duration
	maxConnAge      time.Duration
	commitDelay     time.Duration
	fastPathDelay   time.Duration
	maxDozeDelay    time.Duration
	redeliver       time.Duration
	devices         deviceFlags
	quota           quotaFlags
	log             logFlags

	handshakeTimeout   time.Duration
	maxUnauthPerAddr   int
	maxHTTPConnsPerIP  int
	maxConns           int
	loginFailsPerAddr  int
	loginFailsPerIdent int
}

// quotaFlags are the per-registration and per-sender limits of "ccsd serve";
// 0 disables one.
type quotaFlags struct {
	upstreamRate      int
	downstreamRate    int
	maxUpstreamQueued int
	maxUpstreamBytes  int64
	maxQueuedPerRegID int
	maxCollapseKeys   int
	topicRate         int
	maxTopicJobs      int
}

func (q *quotaFlags) register(fs *flag.FlagSet) {
	fs.IntVar(&q.upstreamRate, "upstream-rate", 240, "device upstream messages per registration per minute, in bursts of as many; past it the device is nacked DEVICE_MESSAGE_RATE_EXCEEDED (0: unlimited)")
	fs.IntVar(&q.downstreamRate, "downstream-rate", 240, "messages to one registration per minute, in bursts of as many (FCM's per-device limit); past it the app server is nacked DEVICE_MESSAGE_RATE_EXCEEDED (0: unlimited)")
	fs.IntVar(&q.maxUpstreamQueued, "max-upstream-queued", 100000, "upstream messages and receipts queued per sender; past it devices are nacked SERVICE_UNAVAILABLE (0: unlimited)")
	fs.Int64Var(&q.maxUpstreamBytes, "max-upstream-queued-bytes", 256<<20, "bytes of upstream messages and receipts queued per sender; past it devices are nacked SERVICE_UNAVAILABLE (0: unlimited)")
	fs.IntVar(&q.maxQueuedPerRegID, "max-queued-per-registration", 100, "messages without collapse_key queued per registration; the next one replaces them all with one deleted_messages message, as GCM did (0: unlimited)")
	fs.IntVar(&q.topicRate, "topic-rate", 600, "messages one sender may send to one topic per minute, in bursts of as many; past it the app server is nacked TOPICS_MESSAGE_RATE_EXCEEDED (HTTP: TopicsMessageRateExceeded) (0: unlimited)")
	fs.IntVar(&q.maxTopicJobs, "max-topic-jobs", 100, "topic and condition messages of one sender accepted and still fanning out; past it the app server is nacked TOPICS_MESSAGE_RATE_EXCEEDED (HTTP: TopicsMessageRateExceeded) (0: unlimited)")
	fs.IntVar(&q.maxCollapseKeys, "max-collapse-keys", 4, "distinct collapse keys queued per registration, as GCM kept; a new key past it deletes the registration's oldest queued message with a collapse key, undelivered (0: unlimited)")
}

func (q *quotaFlags) check() error {
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"--upstream-rate", int64(q.upstreamRate)}, {"--downstream-rate", int64(q.downstreamRate)},
		{"--max-upstream-queued", int64(q.maxUpstreamQueued)}, {"--max-upstream-queued-bytes", q.maxUpstreamBytes},
		{"--max-queued-per-registration", int64(q.maxQueuedPerRegID)},
		{"--max-collapse-keys", int64(q.maxCollapseKeys)},
		{"--topic-rate", int64(q.topicRate)}, {"--max-topic-jobs", int64(q.maxTopicJobs)},
	} {
		if f.v < 0 {
			return fmt.Errorf("%s %d: must not be negative (0 disables the limit)", f.name, f.v)
		}
	}
	return nil
}

// apply copies the limits into the router's config, where 0 means "the
// default" and a negative value "unlimited".
func (q *quotaFlags) apply(c *fanout.Config) {
	off := func(n int64) int64 {
		if n == 0 {
			return -1
		}
		return n
	}
	c.UpstreamRate = int(off(int64(q.upstreamRate)))
	c.DownstreamRate = int(off(int64(q.downstreamRate)))
	c.MaxUpstreamQueued = int(off(int64(q.maxUpstreamQueued)))
	c.MaxUpstreamQueuedBytes = off(q.maxUpstreamBytes)
	c.MaxQueuedPerRegistration = int(off(int64(q.maxQueuedPerRegID)))
	c.MaxCollapseKeys = int(off(int64(q.maxCollapseKeys)))
	c.TopicRate = int(off(int64(q.topicRate)))
	c.MaxTopicJobs = int(off(int64(q.maxTopicJobs)))
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var cfg serveConfig
	fs := serveFlags(&cfg, stderr)
	pos, fromEnv, err := parseFlagsEnv(fs, args)
	if err != nil {
		return flagError(err, stderr)
	}
	if len(pos) > 0 {
		fmt.Fprintf(stderr, "ccsd serve: unexpected argument %q\n", pos[0])
		return exitUsage
	}
	log, err := cfg.log.newLogger(stderr)
	if err != nil {
		fmt.Fprintln(stderr, "ccsd serve:", err)
		return exitUsage
	}
	activeLogger.Store(&log)
	for _, name := range unknownEnv(fs, senderFlagNames(), deviceFlagNames(), serviceAccountFlagNames()) {
		log.Warn().Str("variable", name).Msg("no ccsd flag reads this environment variable (misspelt?); it is ignored")
	}
	if err := cfg.check(); err != nil {
		log.Error().Err(fromEnvNames(err, fromEnv)).Msg("invalid flags")
		return exitUsage
	}
	if err := serve(ctx, cfg, log, stdout); err != nil {
		log.Error().Err(err).Msg("ccsd stopped with an error")
		return exitFail
	}
	return exitOK
}

// serveFlags returns the flag set of "ccsd serve", bound to cfg.
func serveFlags(cfg *serveConfig, stderr io.Writer) *flag.FlagSet {
	fs := newFlagSet("serve", "ccsd serve [flags]", stderr)
	fs.StringVar(&cfg.data, "data", "./ccsd-data", "data directory: database, TLS certificate, run.json")
	fs.StringVar(&cfg.xmppAddr, "xmpp-addr", "127.0.0.1:5235", "app-server XMPP listen address (direct TLS)")
	fs.StringVar(&cfg.deviceAddr, "device-addr", "127.0.0.1:5228", "device XMPP listen address (direct TLS)")
	fs.StringVar(&cfg.httpAddr, "http-addr", "127.0.0.1:8443", "HTTPS listen address: /checkin, /c2dm/register3, /gcm/send, /gcm/notification")
	fs.StringVar(&cfg.adminAddr, "admin-addr", "127.0.0.1:5280", "admin HTTP listen address; must be loopback")
	fs.StringVar(&cfg.domain, "domain", "gcm.googleapis.com", "XMPP domain (fcm.googleapis.com is always accepted too)")
	fs.StringVar(&cfg.tlsCert, "tls-cert", "", "TLS certificate PEM file (default DATA/cert.pem; created self-signed if it and the key are missing)")
	fs.StringVar(&cfg.tlsKey, "tls-key", "", "TLS private key PEM file (default DATA/key.pem)")
	fs.IntVar(&cfg.maxGroupMembers, "max-group-members", 10, "maximum registrations in one device group (notification_key)")
	fs.DurationVar(&cfg.drainGrace, "drain-grace", 10*time.Second, "how long a draining app-server connection (shutdown, POST /admin/drain, --max-connection-age) gets to finish its in-flight messages before it is closed")
	fs.DurationVar(&cfg.maxConnAge, "max-connection-age", 0, "drain each app-server connection (CONNECTION_DRAINING) once it is this old, ±10% jitter, as CCS did to balance load (0: never)")
	fs.DurationVar(&cfg.commitDelay, "commit-delay", 0, "extra time the store waits to gather writes into one commit (tuning and tests; 0 commits at once)")
	fs.DurationVar(&cfg.fastPathDelay, "fast-path-delay", fanout.DefaultFastPathDelay, "how long the queue write of a message sent at once to an online, caught-up device waits for the device's ack; acked within it, the message is never queued, only its dedup record and receipt are written (0: off, every message is queued before it is sent)")
	fs.DurationVar(&cfg.maxDozeDelay, "max-doze-delay", fanout.DefaultMaxDozeDelay, "longest a dozing device's (control DOZE) normal-priority messages are held: every this long it gets what is queued, as in a maintenance window (0: held until AWAKE; delay_while_idle messages always are)")
	fs.DurationVar(&cfg.redeliver, "upstream-redeliver", 2*time.Minute, "how long an upstream message or receipt waits for the app server's ack before it is sent again")
	cfg.devices.register(fs)
	registerLimitFlags(fs, cfg)
	cfg.quota.register(fs)
	cfg.log.register(fs)
	return fs
}

// check validates the flags and fills the defaults that depend on --data.
func (c *serveConfig) check() error {
	if c.data == "" {
		return errors.New("--data is empty")
	}
	if c.tlsCert == "" {
		c.tlsCert = filepath.Join(c.data, "cert.pem")
	}
	if c.tlsKey == "" {
		c.tlsKey = filepath.Join(c.data, "key.pem")
	}
	for _, a := range []struct{ flag, addr string }{
		{"--xmpp-addr", c.xmppAddr}, {"--device-addr", c.deviceAddr},
		{"--http-addr", c.httpAddr}, {"--admin-addr", c.adminAddr},
	} {
		if _, _, err := net.SplitHostPort(a.addr); err != nil {
			return fmt.Errorf("%s %q: %w", a.flag, a.addr, err)
		}
	}
	if !isLoopback(c.adminAddr) {
		return fmt.Errorf("--admin-addr %q is not a loopback address: the admin endpoint has no authentication, so it listens only on 127.0.0.1, ::1 or localhost", c.adminAddr)
	}
	if c.domain == "" || strings.ContainsAny(c.domain, "@/ ") {
		return fmt.Errorf("--domain %q is not a domain name", c.domain)
	}
	if c.maxGroupMembers < 1 {
		return fmt.Errorf("--max-group-members %d: must be at least 1", c.maxGroupMembers)
	}
	if c.drainGrace < 0 {
		return fmt.Errorf("--drain-grace %v: must not be negative", c.drainGrace)
	}
	if c.maxConnAge < 0 {
		return fmt.Errorf("--max-connection-age %v: must not be negative (0 turns it off)", c.maxConnAge)
	}
	if c.redeliver <= 0 {
		return fmt.Errorf("--upstream-redeliver %v: must be positive", c.redeliver)
	}
	if c.commitDelay < 0 {
		return fmt.Errorf("--commit-delay %v: must not be negative", c.commitDelay)
	}
	if c.maxDozeDelay < 0 {
		return fmt.Errorf("--max-doze-delay %v: must not be negative (0: no bound)", c.maxDozeDelay)
	}
	if c.fastPathDelay < 0 {
		return fmt.Errorf("--fast-path-delay %v: must not be negative (0 turns the fast path off)", c.fastPathDelay)
	}
	if err := c.devices.check(); err != nil {
		return err
	}
	if err := c.quota.check(); err != nil {
		return err
	}
	return c.checkLimits()
}

// isLoopback reports whether a host:port names a loopback address. An
// empty host (all interfaces) is not loopback.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	host, _, _ = strings.Cut(host, "%") // drop an IPv6 zone
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// serve runs the server until ctx is done or a listener fails, then shuts
// it down gracefully. A clean stop logs "ccsd stopped"; a failure is
// returned (with any error of closing the store) for runServe to log.
func serve(ctx context.Context, cfg serveConfig, log zerolog.Logger, stdout io.Writer) error {
	a, err := newApp(cfg, log, stdout)
	if err != nil {
		return err
	}
	failure := a.Start()
	if failure == nil {
		select {
		case <-ctx.Done():
			log.Info().Str("reason", context.Cause(ctx).Error()).Msg("shutting down")
		case failure = <-a.Failed():
			if failure == nil {
				failure = errors.New("a listener stopped unexpectedly")
			}
		}
	}
	err = a.Shutdown(context.Background())
	if failure == nil {
		log.Info().Msg("ccsd stopped")
	}
	return errors.Join(failure, err)
}
