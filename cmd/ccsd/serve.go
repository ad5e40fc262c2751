package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	stdlog "log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/ccsd/ccsd/auth"
	"github.com/ccsd/ccsd/fanout"
	"github.com/ccsd/ccsd/groups"
	"github.com/ccsd/ccsd/httpapi"
	"github.com/ccsd/ccsd/internal/limit"
	"github.com/ccsd/ccsd/store"
	"github.com/ccsd/ccsd/store/bolt"
	"github.com/ccsd/ccsd/xmpp"
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
	commitDelay     time.Duration
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
}

func (q *quotaFlags) register(fs *flag.FlagSet) {
	fs.IntVar(&q.upstreamRate, "upstream-rate", 240, "device upstream messages per registration per minute, in bursts of as many; past it the device is nacked DEVICE_MESSAGE_RATE_EXCEEDED (0: unlimited)")
	fs.IntVar(&q.downstreamRate, "downstream-rate", 240, "messages to one registration per minute, in bursts of as many (FCM's per-device limit); past it the app server is nacked DEVICE_MESSAGE_RATE_EXCEEDED (0: unlimited)")
	fs.IntVar(&q.maxUpstreamQueued, "max-upstream-queued", 100000, "upstream messages and receipts queued per sender; past it devices are nacked SERVICE_UNAVAILABLE (0: unlimited)")
	fs.Int64Var(&q.maxUpstreamBytes, "max-upstream-queued-bytes", 256<<20, "bytes of upstream messages and receipts queued per sender; past it devices are nacked SERVICE_UNAVAILABLE (0: unlimited)")
	fs.IntVar(&q.maxQueuedPerRegID, "max-queued-per-registration", 100, "messages without collapse_key queued per registration; the next one replaces them all with one deleted_messages message, as GCM did (0: unlimited)")
}

func (q *quotaFlags) check() error {
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"--upstream-rate", int64(q.upstreamRate)}, {"--downstream-rate", int64(q.downstreamRate)},
		{"--max-upstream-queued", int64(q.maxUpstreamQueued)}, {"--max-upstream-queued-bytes", q.maxUpstreamBytes},
		{"--max-queued-per-registration", int64(q.maxQueuedPerRegID)},
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
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var cfg serveConfig
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
	fs.DurationVar(&cfg.drainGrace, "drain-grace", 10*time.Second, "on shutdown, how long app servers get to finish in-flight messages")
	fs.DurationVar(&cfg.commitDelay, "commit-delay", 0, "extra time the store waits to gather writes into one commit (tuning and tests; 0 commits at once)")
	fs.DurationVar(&cfg.redeliver, "upstream-redeliver", 2*time.Minute, "how long an upstream message or receipt waits for the app server's ack before it is sent again")
	cfg.devices.register(fs)
	registerLimitFlags(fs, &cfg)
	cfg.quota.register(fs)
	cfg.log.register(fs)
	pos, err := parseFlags(fs, args)
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
	if err := cfg.check(); err != nil {
		log.Error().Err(err).Msg("invalid flags")
		return exitUsage
	}
	if err := serve(ctx, cfg, log, stdout); err != nil {
		log.Error().Err(err).Msg("ccsd stopped with an error")
		return exitFail
	}
	return exitOK
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
	if c.redeliver <= 0 {
		return fmt.Errorf("--upstream-redeliver %v: must be positive", c.redeliver)
	}
	if c.commitDelay < 0 {
		return fmt.Errorf("--commit-delay %v: must not be negative", c.commitDelay)
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

// serve runs the server until ctx is done, then shuts it down gracefully.
func serve(ctx context.Context, cfg serveConfig, log zerolog.Logger, stdout io.Writer) (err error) {
	nofile := raiseFileLimit(log) // every connection is a file: 1024 would cap clients long before the machine does
	if err := os.MkdirAll(cfg.data, 0o700); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	dbPath := filepath.Join(cfg.data, "ccsd.db")
	db, err := bolt.Open(dbPath, bolt.Options{LockTimeout: 2 * time.Second, CommitDelay: cfg.commitDelay})
	if errors.Is(err, store.ErrLocked) {
		return fmt.Errorf("data directory %s is in use by another ccsd process: %w", cfg.data, err)
	}
	if err != nil {
		return err
	}
	defer func() {
		if cerr := db.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("close store: %w", cerr))
		}
	}()
	log.Info().Str("path", dbPath).Msg("store open")

	senders, devices := auth.NewSenders(db), auth.NewDevicesWithLimits(db, cfg.devices.limits())
	if err := ensureDefaultSender(senders, log, stdout); err != nil {
		return err
	}
	defer startDeviceExpiry(devices, cfg.devices.sweepInterval, log.With().Str("component", "devices").Logger())()

	aliases := []string{}
	if cfg.domain != fcmDomain {
		aliases = append(aliases, fcmDomain)
	}
	hosts := append([]string{"localhost", "127.0.0.1", "::1", cfg.domain}, aliases...)
	cert, created, err := xmpp.LoadOrCreateCertificate(cfg.tlsCert, cfg.tlsKey, hosts)
	if err != nil {
		return fmt.Errorf("TLS certificate: %w", err)
	}
	if created {
		log.Info().Str("cert", cfg.tlsCert).Str("key", cfg.tlsKey).Strs("hosts", hosts).
			Msg("created a self-signed TLS certificate; clients must trust cert.pem or skip verification")
	} else {
		log.Info().Str("cert", cfg.tlsCert).Msg("loaded TLS certificate")
	}
	tlsConf := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}

	// One failed-login limiter for every place that takes credentials, so a
	// guesser's budget is the same whichever port it uses; device ids get
	// their own identity namespace.
	logins := limit.NewLogins(cfg.loginFailsPerAddr, cfg.loginFailsPerIdent)
	conns, maxConns := globalConns(cfg.maxConns, nofile)
	log.Info().Int("max_conns", maxConns).Uint64("nofile", nofile).Msg("connection limit (0: none)")

	rcfg := fanout.Config{
		Store:             db,
		Logger:            log.With().Str("component", "fanout").Logger(),
		Domain:            cfg.domain,
		Aliases:           aliases,
		UpstreamRedeliver: cfg.redeliver,
	}
	cfg.quota.apply(&rcfg)
	router, err := fanout.New(rcfg)
	if err != nil {
		return fmt.Errorf("start router: %w", err)
	}
	defer router.Close()

	appServers := xmpp.NewServer(xmpp.Config{
		Domain:  cfg.domain,
		Aliases: aliases,
		TLS:     tlsConf,
		Auth:    senders,
		Handler: xmpp.HandlerFunc(func(c *xmpp.Conn) (xmpp.Stream, error) {
			s, err := router.OpenAppServer(c)
			if err != nil {
				return nil, err
			}
			return s, nil
		}),
		Logger:              log.With().Str("component", "xmpp").Str("side", "app-server").Logger(),
		MaxConnsPerIdentity: 1000, // CCS allowed 1000 connections per sender
		HandshakeTimeout:    cfg.handshakeTimeout,
		MaxUnauthPerAddr:    cfg.maxUnauthPerAddr,
		Conns:               conns,
		Logins:              logins,
	})
	deviceServer := xmpp.NewServer(xmpp.Config{
		Domain:  cfg.domain,
		Aliases: aliases,
		TLS:     tlsConf,
		Auth:    xmpp.AuthenticatorFunc(devices.Login), // records the first login
		Handler: xmpp.HandlerFunc(func(c *xmpp.Conn) (xmpp.Stream, error) {
			s, err := router.OpenDevice(c)
			if err != nil {
				return nil, err
			}
			return s, nil
		}),
		Logger:           log.With().Str("component", "xmpp").Str("side", "device").Logger(),
		HandshakeTimeout: cfg.handshakeTimeout,
		MaxUnauthPerAddr: cfg.maxUnauthPerAddr,
		Conns:            conns,
		Logins:           logins.Scoped("device:"),
	})

	state := &readiness{storeErr: db.LastCommitErr}
	instance := newInstanceID()
	httpLog := log.With().Str("component", "http").Logger()
	checkinRate, registerRate := cfg.devices.rates()
	api := httpapi.New(httpapi.Config{Devices: devices, Logger: httpLog, CheckinLimit: checkinRate, RegisterLimit: registerRate})
	httpapi.NewSendHandler(router, senders, logins, httpLog).Mount(api)
	groupsHandler := groups.New(db, cfg.maxGroupMembers).Handler(senders, logins)
	for _, p := range groups.Paths {
		api.Handle(p, groupsHandler)
	}
	admin := httpapi.NewAdmin(httpapi.AdminConfig{
		Senders:  senders,
		Logger:   log.With().Str("component", "admin").Logger(),
		Instance: instance,
		Revoked: func(id string) {
			n := router.CloseSender(id)
			log.Info().Str("sender_id", id).Int("connections", n).Msg("closed the revoked sender's connections")
		},
		Health: state.live,
		Ready:  state.ready,
	})
	httpServer := &http.Server{
		Handler:           api,
		TLSConfig:         tlsConf,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          stdlog.New(debugWriter{httpLog}, "", 0),
	}
	adminServer := &http.Server{
		Handler:           admin,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		ErrorLog:          stdlog.New(debugWriter{log}, "", 0),
	}

	// Bind every listener before serving any, so that a taken port fails
	// the start cleanly.
	addrs := []struct{ name, addr string }{
		{"xmpp", cfg.xmppAddr}, {"device", cfg.deviceAddr}, {"http", cfg.httpAddr}, {"admin", cfg.adminAddr},
	}
	ls := make([]net.Listener, 0, len(addrs))
	for _, a := range addrs {
		l, err := net.Listen("tcp", a.addr)
		if err != nil {
			closeListeners(ls...)
			return fmt.Errorf("listen %s on %s: %w", a.name, a.addr, err)
		}
		ls = append(ls, l)
	}
	lXMPP, lDevice, lHTTP, lAdmin := ls[0], ls[1], ls[2], ls[3]
	lHTTP = limitHTTP(lHTTP, conns, cfg.maxHTTPConnsPerIP, httpLog)

	errc := make(chan error, len(ls))
	go func() { errc <- served("app-server XMPP", appServers.Serve(lXMPP)) }()
	go func() { errc <- served("device XMPP", deviceServer.Serve(lDevice)) }()
	go func() { errc <- served("HTTPS", httpServer.ServeTLS(lHTTP, "", "")) }()
	go func() { errc <- served("admin HTTP", adminServer.Serve(lAdmin)) }()

	info := runInfo{
		PID:        os.Getpid(),
		XMPPAddr:   lXMPP.Addr().String(),
		DeviceAddr: lDevice.Addr().String(),
		HTTPAddr:   lHTTP.Addr().String(),
		AdminAddr:  lAdmin.Addr().String(),
		Instance:   instance,
	}
	var failure error
	state.up.Store(true) // every listener serves: /readyz may say ready once run.json exists
	if err := writeRunInfo(cfg.data, info); err != nil {
		failure = err
	} else {
		log.Info().Str("xmpp_addr", info.XMPPAddr).Str("device_addr", info.DeviceAddr).
			Str("http_addr", info.HTTPAddr).Str("admin_addr", info.AdminAddr).
			Str("domain", cfg.domain).Str("version", version).Msg("ccsd ready")
		select {
		case <-ctx.Done():
			log.Info().Str("reason", context.Cause(ctx).Error()).Msg("shutting down")
		case failure = <-errc:
			if failure == nil {
				failure = errors.New("a listener stopped unexpectedly")
			}
		}
	}

	// Graceful shutdown: no new connections; app servers get
	// CONNECTION_DRAINING and --drain-grace to finish; then everything
	// closes in dependency order (store last, by the defers above).
	state.draining.Store(true)
	closeListeners(lXMPP, lDevice, lHTTP)
	dctx, cancel := context.WithTimeout(context.Background(), cfg.drainGrace)
	if err := router.Drain(dctx); err != nil {
		log.Warn().Err(err).Dur("drain_grace", cfg.drainGrace).Msg("drain not finished in time; closing connections anyway")
	}
	cancel()
	log.Debug().Msg("shutdown: drained")
	if err := appServers.Close(); err != nil {
		log.Warn().Err(err).Msg("close app-server XMPP")
	}
	if err := deviceServer.Close(); err != nil {
		log.Warn().Err(err).Msg("close device XMPP")
	}
	log.Debug().Msg("shutdown: XMPP servers closed")
	hctx, hcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer hcancel()
	for name, srv := range map[string]*http.Server{"HTTPS": httpServer, "admin HTTP": adminServer} {
		if err := srv.Shutdown(hctx); err != nil && !errors.Is(err, net.ErrClosed) {
			log.Warn().Err(err).Str("server", name).Msg("HTTP shutdown")
		}
	}
	log.Debug().Msg("shutdown: HTTP servers closed")
	if err := router.Close(); err != nil {
		log.Warn().Err(err).Msg("close router")
	}
	if err := os.Remove(filepath.Join(cfg.data, runInfoFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		log.Warn().Err(err).Msg("remove run.json")
	}
	if failure == nil {
		log.Info().Msg("ccsd stopped")
	}
	return failure
}

// ensureDefaultSender creates a sender on the first start of an empty data
// directory and prints its credentials on stdout, so a newcomer can connect
// an app server at once.
func ensureDefaultSender(senders *auth.Senders, log zerolog.Logger, stdout io.Writer) error {
	list, err := senders.List()
	if err != nil {
		return err
	}
	if len(list) > 0 {
		log.Info().Int("senders", len(list)).Msg("senders found")
		return nil
	}
	s, key, err := senders.Create("")
	if err != nil {
		return fmt.Errorf("create the default sender: %w", err)
	}
	if err := json.NewEncoder(stdout).Encode(httpapi.CreateSenderResponse{SenderID: s.ID, APIKey: key}); err != nil {
		return fmt.Errorf("print the default sender: %w", err)
	}
	log.Info().Str("sender_id", s.ID).
		Msg("first start: created a default sender; its API key is the api_key printed on stdout (shown once)")
	return nil
}

// served names the error a Serve call returned; nil for a normal stop.
func served(what string, err error) error {
	if err == nil || errors.Is(err, http.ErrServerClosed) || errors.Is(err, net.ErrClosed) {
		return nil
	}
	return fmt.Errorf("%s listener: %w", what, err)
}

func closeListeners(ls ...net.Listener) {
	for _, l := range ls {
		_ = l.Close() // a second Close (by Serve or Shutdown) is harmless
	}
}

// newInstanceID returns a random id for this server run.
func newInstanceID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// debugWriter sends the standard library's log lines (TLS handshake errors
// from clients that reject the self-signed certificate, and the like) to
// zerolog at debug level.
type debugWriter struct{ log zerolog.Logger }

func (w debugWriter) Write(p []byte) (int, error) {
	w.log.Debug().Msg(strings.TrimSpace(string(p)))
	return len(p), nil
}
