package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
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
	"github.com/ccsd/ccsd/internal/metrics"
	"github.com/ccsd/ccsd/store"
	"github.com/ccsd/ccsd/store/bolt"
	"github.com/ccsd/ccsd/topics"
	"github.com/ccsd/ccsd/xmpp"
)

// app is one run of "ccsd serve", shaped like net/http.Server: newApp
// builds every part without binding a port, Start binds and serves, and
// Shutdown stops gracefully and releases everything. The parts are wired
// once here; no other file of the command knows how they fit together.
type app struct {
	cfg serveConfig
	log zerolog.Logger

	// Built by newApp, released by release (in reverse order).
	db         *bolt.DB
	stopExpiry func() // stops the unused-device sweep, waiting for a pass under way
	router     *fanout.Router

	state    *readiness
	instance string // random id of this run, in run.json and /healthz
	conns    *limit.Count
	httpLog  zerolog.Logger
	api      *httpapi.API

	// Counts for /metrics that no serving package keeps: the failed-login
	// budget's refusals on every port, the HTTPS listener's refusals.
	loginRefusals limit.LoginRefusals
	httpRefused   httpRefusals

	appServers, deviceServer *xmpp.Server
	httpServer, adminServer  *http.Server

	// Set by Start once every port is bound.
	started                       bool
	lXMPP, lDevice, lHTTP, lAdmin net.Listener
	bound                         []net.Listener // by listenAll, in newApp; served by Start
	errc                          chan error     // one result per Serve call, see served
}

// newApp builds a server run from cfg, in dependency order: the data
// directory and store, the senders and devices (printing the default
// sender's credentials on stdout on a first start), the unused-device
// sweep, the TLS certificate, the limiters shared by every port, the router
// and the XMPP and HTTP servers. It binds no port. On an error, what was
// already built is released.
func newApp(cfg serveConfig, log zerolog.Logger, stdout io.Writer) (_ *app, err error) {
	a := &app{cfg: cfg, log: log}
	defer func() {
		if err != nil {
			err = errors.Join(err, a.release())
		}
	}()
	nofile := raiseFileLimit(log) // every connection is a file: 1024 would cap clients long before the machine does
	if a.bound, err = listenAll(cfg); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.data, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	if a.db, err = openStore(cfg, log); err != nil {
		return nil, err
	}
	db := a.db
	senders, devices := auth.NewSenders(db), auth.NewDevicesWithLimits(db, cfg.devices.limits())
	if err := ensureDefaultSender(senders, log, stdout); err != nil {
		return nil, err
	}
	a.stopExpiry = startDeviceExpiry(devices, cfg.devices.sweepInterval, log.With().Str("component", "devices").Logger())

	aliases := []string{}
	if cfg.domain != fcmDomain {
		aliases = append(aliases, fcmDomain)
	}
	tlsConf, err := loadTLS(cfg, aliases, log)
	if err != nil {
		return nil, err
	}

	// One failed-login limiter for every place that takes credentials, so a
	// guesser's budget is the same whichever port it uses; device ids get
	// their own identity namespace.
	logins := limit.NewLogins(cfg.loginFailsPerAddr, cfg.loginFailsPerIdent)
	conns, maxConns := globalConns(cfg.maxConns, nofile)
	log.Info().Int("max_conns", maxConns).Uint64("nofile", nofile).Msg("connection limit (0: none)")
	a.conns = conns

	rcfg := fanout.Config{
		Store:             db,
		Logger:            log.With().Str("component", "fanout").Logger(),
		Domain:            cfg.domain,
		Aliases:           aliases,
		UpstreamRedeliver: cfg.redeliver,
		DrainGrace:        drainGrace(cfg.drainGrace),
		MaxConnectionAge:  cfg.maxConnAge,
		FastPathDelay:     fastPathDelay(cfg.fastPathDelay),
		MaxDozeDelay:      fastPathDelay(cfg.maxDozeDelay), // 0 (no bound) is negative there too
	}
	cfg.quota.apply(&rcfg)
	if a.router, err = fanout.New(rcfg); err != nil {
		return nil, fmt.Errorf("start router: %w", err)
	}
	a.newXMPPServers(tlsConf, aliases, senders, devices, logins)
	a.newHTTPServers(tlsConf, senders, devices, logins)
	return a, nil
}

// drainGrace is --drain-grace as fanout.Config takes it: there 0 is the
// default, so --drain-grace 0 (close at once) is passed as negative.
func drainGrace(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

// fastPathDelay is --fast-path-delay (or --max-doze-delay) as
// fanout.Config takes it: there 0 is the default, so 0 (off, no bound) is
// passed as negative.
func fastPathDelay(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

// openStore opens DATA/ccsd.db, naming a data directory another process
// holds.
func openStore(cfg serveConfig, log zerolog.Logger) (*bolt.DB, error) {
	dbPath := filepath.Join(cfg.data, "ccsd.db")
	// A run.json naming a live process most likely means a server holds the
	// database: then the lock is tried briefly, not for the usual 2s, and
	// the refusal names that process.
	wait := 2 * time.Second
	holder, _ := readRunInfo(cfg.data)
	alive := holder.PID != os.Getpid() && processAlive(holder.PID)
	if alive {
		wait = 100 * time.Millisecond
	}
	db, err := bolt.Open(dbPath, bolt.Options{LockTimeout: wait, CommitDelay: cfg.commitDelay})
	if errors.Is(err, store.ErrLocked) {
		if alive {
			return nil, fmt.Errorf("data directory %s is in use by ccsd pid %d (admin %s, see its run.json): stop it, or give this server another --data: %w",
				cfg.data, holder.PID, holder.AdminAddr, err)
		}
		return nil, fmt.Errorf("data directory %s is in use by another ccsd process: %w", cfg.data, err)
	}
	if err != nil {
		return nil, err
	}
	log.Info().Str("path", dbPath).Msg("store open")
	return db, nil
}

// googleHosts are the host names app servers were written against: the CCS
// XMPP endpoints and the legacy HTTP ones. A self-signed certificate covers
// them, so that an app server whose host name is mapped to ccsd (e.g. in
// /etc/hosts) passes its hostname check once it trusts cert.pem.
var googleHosts = []string{
	"fcm-xmpp.googleapis.com", "gcm-xmpp.googleapis.com", // CCS, ports 5235/5236
	"gcm-http.googleapis.com", "android.googleapis.com", // /gcm/send, /gcm/notification
	"iid.googleapis.com", // the Instance ID API, whose host firebase-admin hard-codes
}

// loadTLS loads the certificate of --tls-cert/--tls-key, or creates a
// self-signed one for the loopback names, --domain and its aliases, and
// Google's CCS and legacy HTTP host names.
func loadTLS(cfg serveConfig, aliases []string, log zerolog.Logger) (*tls.Config, error) {
	hosts := append([]string{"localhost", "127.0.0.1", "::1", cfg.domain}, aliases...)
	hosts = append(hosts, googleHosts...)
	cert, created, err := xmpp.LoadOrCreateCertificate(cfg.tlsCert, cfg.tlsKey, hosts)
	if err != nil {
		return nil, fmt.Errorf("TLS certificate: %w", err)
	}
	if created {
		log.Info().Str("cert", cfg.tlsCert).Str("key", cfg.tlsKey).Strs("hosts", hosts).
			Msg("created a self-signed TLS certificate; clients must trust cert.pem or skip verification")
	} else {
		log.Info().Str("cert", cfg.tlsCert).Msg("loaded TLS certificate")
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// newXMPPServers builds the app-server and the device XMPP servers; both
// count against the global connection limit and share the failed-login
// limiter.
func (a *app) newXMPPServers(tlsConf *tls.Config, aliases []string, senders *auth.Senders, devices *auth.Devices, logins *limit.Logins) {
	cfg, log, router, conns := a.cfg, a.log, a.router, a.conns
	counted := &a.loginRefusals
	a.appServers = xmpp.NewServer(xmpp.Config{
		Domain:  cfg.domain,
		Aliases: aliases,
		TLS:     tlsConf,
		Auth:    senders,
		Handler: xmpp.HandlerFunc(func(c *xmpp.Conn) (xmpp.Stream, error) {
			return router.OpenAppServer(stream{c, "app"}), nil
		}),
		Logger:              log.With().Str("component", "xmpp").Str("side", "app-server").Logger(),
		MaxConnsPerIdentity: fanout.MaxAppServerConns, // the session policy is fanout's
		DeliveryFrom:        "devices@" + cfg.domain,  // spec §5.1
		HandshakeTimeout:    cfg.handshakeTimeout,
		MaxUnauthPerAddr:    cfg.maxUnauthPerAddr,
		Conns:               conns,
		Logins:              counted.Wrap(logins),
	})
	a.deviceServer = xmpp.NewServer(xmpp.Config{
		Domain:  cfg.domain,
		Aliases: aliases,
		TLS:     tlsConf,
		Auth:    xmpp.AuthenticatorFunc(devices.Login), // records the first login
		Handler: xmpp.HandlerFunc(func(c *xmpp.Conn) (xmpp.Stream, error) {
			return router.OpenDevice(stream{c, "dev"}), nil
		}),
		Logger:           log.With().Str("component", "xmpp").Str("side", "device").Logger(),
		HandshakeTimeout: cfg.handshakeTimeout,
		MaxUnauthPerAddr: cfg.maxUnauthPerAddr,
		Conns:            conns,
		Logins:           counted.Wrap(logins.Scoped("device:")),
	})
}

// newHTTPServers builds the readiness state, the public HTTPS API (device
// endpoints, legacy send, device groups) and the loopback admin endpoint.
func (a *app) newHTTPServers(tlsConf *tls.Config, senders *auth.Senders, devices *auth.Devices, logins *limit.Logins) {
	cfg, log, db, router := a.cfg, a.log, a.db, a.router
	state := &readiness{storeErr: db.LastCommitErr}
	instance := newInstanceID()
	httpLog := log.With().Str("component", "http").Logger()
	checkinRate, registerRate := cfg.devices.rates()
	api := httpapi.New(httpapi.Config{Devices: devices, Logger: httpLog, CheckinLimit: checkinRate, RegisterLimit: registerRate})
	a.api = api
	keyLogins := a.loginRefusals.Wrap(logins)
	httpapi.NewSendHandler(router, senders, keyLogins, httpLog).Mount(api)
	httpapi.NewNotificationHandler(groups.New(db, cfg.maxGroupMembers), senders, keyLogins, httpLog).Mount(api)
	iid := httpapi.NewIIDHandler(topics.New(db, topics.DefaultMaxPerRegistration), senders, devices, keyLogins, httpLog)
	iid.Mount(api)
	admin := httpapi.NewAdmin(httpapi.AdminConfig{
		Senders:  senders,
		Logger:   log.With().Str("component", "admin").Logger(),
		Instance: instance,
		Revoked: func(id string) {
			n := router.CloseSender(id)
			log.Info().Str("sender_id", id).Int("connections", n).Msg("closed the revoked sender's connections")
		},
		Health:      state.live,
		Ready:       state.ready,
		Metrics:     metrics.Handler(a.metricsSources()),
		Debug:       metrics.Debug(),
		Connections: router,
	})
	admin.Handle("DELETE /admin/senders/{id}", senderDeleteHandler(db, router.CloseSender, log.With().Str("component", "admin").Logger())) // senderdelete.go
	mountServiceAccounts(auth.NewServiceAccounts(db, auth.ServiceAccountLimits{}), api, admin, iid, router, keyLogins, a.bound[2].Addr().String(), httpLog)
	a.httpServer = &http.Server{
		Handler:           api,
		TLSConfig:         tlsConf,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          stdlog.New(debugWriter{httpLog}, "", 0),
	}
	a.adminServer = &http.Server{
		Handler:           admin,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		// Past pprof's default 30 s CPU profile, which pprof refuses when
		// it would outlast the write timeout.
		WriteTimeout: 2 * time.Minute,
		ErrorLog:     stdlog.New(debugWriter{log}, "", 0),
	}
	a.state, a.instance, a.httpLog = state, instance, httpLog
}

// Start serves every listener newApp bound, marks the run up and writes
// run.json with the bound addresses. Listener failures after that arrive
// on Failed. Call Shutdown after Start whatever it returned.
func (a *app) Start() error {
	cfg := a.cfg
	ls := a.bound
	lXMPP, lDevice, lHTTP, lAdmin := ls[0], ls[1], ls[2], ls[3]
	lHTTP = limitHTTP(lHTTP, a.conns, cfg.maxHTTPConnsPerIP, &a.httpRefused, a.httpLog)
	a.lXMPP, a.lDevice, a.lHTTP, a.lAdmin = lXMPP, lDevice, lHTTP, lAdmin
	a.started = true

	errc := make(chan error, len(ls))
	a.errc = errc
	go func() { errc <- served("app-server XMPP", a.appServers.Serve(lXMPP)) }()
	go func() { errc <- served("device XMPP", a.deviceServer.Serve(lDevice)) }()
	go func() { errc <- served("HTTPS", a.httpServer.ServeTLS(lHTTP, "", "")) }()
	go func() { errc <- served("admin HTTP", a.adminServer.Serve(lAdmin)) }()

	info := runInfo{
		PID:        os.Getpid(),
		XMPPAddr:   lXMPP.Addr().String(),
		DeviceAddr: lDevice.Addr().String(),
		HTTPAddr:   lHTTP.Addr().String(),
		AdminAddr:  lAdmin.Addr().String(),
		Instance:   a.instance,
	}
	a.state.up.Store(true) // every listener serves: /readyz may say ready once run.json exists
	if err := writeRunInfo(cfg.data, info); err != nil {
		return err
	}
	a.log.Info().Str("xmpp_addr", info.XMPPAddr).Str("device_addr", info.DeviceAddr).
		Str("http_addr", info.HTTPAddr).Str("admin_addr", info.AdminAddr).
		Str("domain", cfg.domain).Str("version", version).Msg("ccsd ready")
	return nil
}

// Failed delivers the result of a Serve call that returned: while the app
// runs, any value (nil included) means a listener stopped unexpectedly.
func (a *app) Failed() <-chan error { return a.errc }

// Shutdown stops the run gracefully, as net/http.Server.Shutdown does, and
// releases what newApp built. It is safe after a failed Start, which left
// nothing to stop. ctx bounds the drain (besides --drain-grace) and the
// HTTP shutdown (besides 5 s). The error is the store's Close error: what
// goes wrong while stopping is logged, as a stop carries on regardless.
func (a *app) Shutdown(ctx context.Context) error {
	if a.started {
		a.stop(ctx)
	}
	return a.release()
}

// stop is the graceful part of Shutdown: no new connections (/readyz says
// draining, the admin port keeps answering); app servers get
// CONNECTION_DRAINING and --drain-grace to finish; then everything closes
// in dependency order and run.json is removed.
func (a *app) stop(ctx context.Context) {
	log := a.log
	a.state.draining.Store(true)
	closeListeners(a.lXMPP, a.lDevice, a.lHTTP)
	dctx, cancel := context.WithTimeout(ctx, a.cfg.drainGrace)
	if err := a.router.Drain(dctx); err != nil {
		log.Warn().Err(err).Dur("drain_grace", a.cfg.drainGrace).Msg("drain not finished in time; closing connections anyway")
	}
	cancel()
	log.Debug().Msg("shutdown: drained")
	if err := a.appServers.Close(); err != nil {
		log.Warn().Err(err).Msg("close app-server XMPP")
	}
	if err := a.deviceServer.Close(); err != nil {
		log.Warn().Err(err).Msg("close device XMPP")
	}
	log.Debug().Msg("shutdown: XMPP servers closed")
	hctx, hcancel := context.WithTimeout(ctx, 5*time.Second)
	defer hcancel()
	for name, srv := range map[string]*http.Server{"HTTPS": a.httpServer, "admin HTTP": a.adminServer} {
		if err := srv.Shutdown(hctx); err != nil && !errors.Is(err, net.ErrClosed) {
			log.Warn().Err(err).Str("server", name).Msg("HTTP shutdown")
		}
	}
	log.Debug().Msg("shutdown: HTTP servers closed")
	if err := a.router.Close(); err != nil {
		log.Warn().Err(err).Msg("close router")
	}
	if err := os.Remove(filepath.Join(a.cfg.data, runInfoFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		log.Warn().Err(err).Msg("remove run.json")
	}
}

// listenAll binds every public and admin address, first of all: a busy
// port then fails the start before a data directory, a database or a
// default sender exists. The error names every busy address and the flag
// that moves it.
func listenAll(cfg serveConfig) ([]net.Listener, error) {
	addrs := []struct{ name, flag, addr string }{
		{"xmpp", "--xmpp-addr", cfg.xmppAddr}, {"device", "--device-addr", cfg.deviceAddr},
		{"http", "--http-addr", cfg.httpAddr}, {"admin", "--admin-addr", cfg.adminAddr},
	}
	ls := make([]net.Listener, 0, len(addrs))
	var errs []error
	for _, b := range addrs {
		l, err := net.Listen("tcp", b.addr)
		if err != nil {
			errs = append(errs, fmt.Errorf("listen %s on %s: %w (choose another address with %s, or port 0 for any free one)", b.name, b.addr, err, b.flag))
			continue
		}
		ls = append(ls, l)
	}
	if len(errs) > 0 {
		closeListeners(ls...)
		return nil, errors.Join(errs...)
	}
	return ls, nil
}

// release closes what newApp built, in reverse order: the router, the
// device sweep, the store last. A part newApp did not get to is skipped.
func (a *app) release() error {
	if !a.started {
		closeListeners(a.bound...)
	}
	if a.router != nil {
		_ = a.router.Close() // after stop's Close a second one is harmless; its error was logged there
	}
	if a.stopExpiry != nil {
		a.stopExpiry()
	}
	if a.db != nil {
		if err := a.db.Close(); err != nil {
			return fmt.Errorf("close store: %w", err)
		}
	}
	return nil
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
