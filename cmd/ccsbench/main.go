package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
)

// Exit codes.
const (
	exitOK    = 0 // the run completed and every check passed
	exitFail  = 1 // setup failed, the run was cut short, or a check failed
	exitUsage = 2 // bad flags or addresses
)

// Scenarios.
const (
	scenarioDownstream = "downstream"
	scenarioGroup      = "group"
	scenarioUpstream   = "upstream"
	scenarioIdle       = "idle"
	scenarioLogin      = "login"
	scenarioQueue      = "queue"
	scenarioOffline    = "offline"
)

// config is the parsed command line.
type config struct {
	data       string
	xmppAddr   string
	deviceAddr string
	httpAddr   string
	adminAddr  string
	ca         string
	domain     string
	app        string

	scenario     string
	devices      int
	conns        int
	messages     int
	window       int
	groupSize    int
	payload      int
	duration     time.Duration
	setupTimeout time.Duration
	json         bool
	rate         float64 // messages per second offered; 0: as fast as the windows allow
	sourceAddrs  int     // client source addresses 127.0.0.1..127.0.0.N
	html         string  // file for the HTML report; "" for none
	restartCmd   string  // offline: the shell command that restarts ccsd
	readyTimeout time.Duration

	// From DATA/run.json, when --data is given.
	pid      int
	instance string
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the whole program: it parses args, measures, and writes the
// summary to stdout (progress and errors go to stderr). It returns the exit
// code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "peer" { // a generic XMPP server: peer.go
		return runPeer(ctx, args[1:], stdout, stderr)
	}
	cfg, err := parseConfig(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintln(stderr, "ccsbench:", err)
		return exitUsage
	}
	tlsConf, err := loadCA(cfg.ca)
	if err != nil {
		fmt.Fprintln(stderr, "ccsbench:", err)
		return exitUsage
	}
	rep, err := execute(ctx, cfg, tlsConf, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "ccsbench:", err)
		if rep == nil {
			return exitFail
		}
	}
	if cfg.html != "" {
		if err := rep.writeHTML(cfg.html); err != nil {
			fmt.Fprintln(stderr, "ccsbench:", err)
			return exitFail
		}
	}
	if cfg.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			fmt.Fprintln(stderr, "ccsbench:", err)
			return exitFail
		}
	} else {
		rep.writeText(stdout)
	}
	if !rep.OK {
		return exitFail
	}
	return exitOK
}

// parseConfig parses and checks the flags; addresses missing from the
// command line come from DATA/run.json. Its length is the flag table, one
// line per flag, kept in one place to be read as a whole.
func parseConfig(args []string, stderr io.Writer) (*config, error) {
	cfg := &config{}
	fs := flag.NewFlagSet("ccsbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: ccsbench --data DIR [flags]\n       ccsbench --xmpp-addr A --device-addr A --http-addr A --admin-addr A --ca FILE [flags]\n\nLoad tool for a ccsd running on this machine (loopback addresses only).\n\nFlags:")
		fs.PrintDefaults()
	}
	fs.StringVar(&cfg.data, "data", "", "data directory of the running ccsd: addresses from run.json, CA from cert.pem")
	fs.StringVar(&cfg.xmppAddr, "xmpp-addr", "", "app-server XMPP address (default from run.json)")
	fs.StringVar(&cfg.deviceAddr, "device-addr", "", "device XMPP address (default from run.json)")
	fs.StringVar(&cfg.httpAddr, "http-addr", "", "HTTPS address: checkin, register3, /gcm/notification (default from run.json)")
	fs.StringVar(&cfg.adminAddr, "admin-addr", "", "admin HTTP address, to create the run's sender (default from run.json)")
	fs.StringVar(&cfg.ca, "ca", "", "PEM certificate(s) to verify ccsd's TLS certificate (default DATA/cert.pem)")
	fs.StringVar(&cfg.domain, "domain", "gcm.googleapis.com", "XMPP domain: stream 'to' and the sender JID's domain")
	fs.StringVar(&cfg.app, "app", "com.ccsbench.app", "app (package name) every device registers")
	fs.StringVar(&cfg.scenario, "scenario", scenarioDownstream, "downstream, group, upstream, idle, login, queue or offline")
	fs.IntVar(&cfg.devices, "devices", 50, "devices to check in, register and connect")
	fs.IntVar(&cfg.conns, "conns", 4, "app-server XMPP connections")
	fs.IntVar(&cfg.messages, "messages", 20000, "messages to send in total")
	fs.IntVar(&cfg.window, "window", 100, "unanswered messages allowed per connection (CCS's limit is 100)")
	fs.IntVar(&cfg.groupSize, "group-size", 10, "registrations per device group (scenario group)")
	fs.IntVar(&cfg.payload, "payload", 64, "bytes of the data value in every message")
	fs.DurationVar(&cfg.duration, "duration", 10*time.Second, "hard cap on the measured phase (idle, login: its length)")
	fs.DurationVar(&cfg.setupTimeout, "setup-timeout", 60*time.Second, "hard cap on setup (sender, devices, groups, logins)")
	fs.BoolVar(&cfg.json, "json", false, "write the summary as JSON")
	fs.Float64Var(&cfg.rate, "rate", 0, "offered load in messages per second, paced (downstream, group, upstream; 0: as fast as the windows allow)")
	fs.IntVar(&cfg.sourceAddrs, "source-addrs", 1, "spread the client's connections over source addresses 127.0.0.1..127.0.0.N (IPv4 loopback only)")
	fs.StringVar(&cfg.html, "html", "", "also write a self-contained HTML page with throughput and latency per second to this file")
	fs.StringVar(&cfg.restartCmd, "restart-cmd", "", "offline: shell command (sh -c) that stops ccsd and starts it again on the same --data directory, run between queueing and draining")
	fs.DurationVar(&cfg.readyTimeout, "ready-timeout", 120*time.Second, "offline: hard cap on the wait for the restarted ccsd to be ready")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if cfg.data != "" {
		if err := cfg.fromRunInfo(); err != nil {
			return nil, err
		}
	}
	for _, a := range []struct{ flag, addr string }{
		{"--xmpp-addr", cfg.xmppAddr}, {"--device-addr", cfg.deviceAddr},
		{"--http-addr", cfg.httpAddr}, {"--admin-addr", cfg.adminAddr},
	} {
		if a.addr == "" {
			return nil, fmt.Errorf("%s is needed (or --data DIR of a running ccsd)", a.flag)
		}
		if err := checkLoopback(a.flag, a.addr); err != nil {
			return nil, err
		}
	}
	if cfg.ca == "" {
		return nil, errors.New("--ca is needed (or --data DIR, whose cert.pem is used)")
	}
	switch cfg.scenario {
	case scenarioDownstream, scenarioGroup, scenarioUpstream, scenarioIdle, scenarioLogin, scenarioQueue, scenarioOffline:
	default:
		return nil, fmt.Errorf("--scenario %q: want downstream, group, upstream, idle, login, queue or offline", cfg.scenario)
	}
	if err := cfg.checkNew(); err != nil {
		return nil, err
	}
	for _, v := range []struct {
		flag string
		n    int
		min  int
		max  int
	}{
		{"--devices", cfg.devices, 1, 1_000_000},
		{"--conns", cfg.conns, 1, 1000},
		{"--messages", cfg.messages, 1, 50_000_000},
		{"--window", cfg.window, 1, 100000},
		{"--group-size", cfg.groupSize, 1, 1000},
		{"--payload", cfg.payload, 0, 4000},
	} {
		if v.n < v.min || v.n > v.max {
			return nil, fmt.Errorf("%s %d: want %d to %d", v.flag, v.n, v.min, v.max)
		}
	}
	if cfg.duration <= 0 || cfg.setupTimeout <= 0 {
		return nil, errors.New("--duration and --setup-timeout must be positive")
	}
	if cfg.domain == "" || cfg.app == "" {
		return nil, errors.New("--domain and --app must not be empty")
	}
	return cfg, nil
}

// checkNew checks the flags of the rate, source-address and scenario
// options.
func (c *config) checkNew() error {
	if c.rate < 0 || c.rate > 10_000_000 || c.rate != c.rate {
		return fmt.Errorf("--rate %v: want 0 to 10000000 messages per second", c.rate)
	}
	if c.rate > 0 && (c.scenario == scenarioIdle || c.scenario == scenarioLogin) {
		return fmt.Errorf("--rate applies to downstream, group and upstream, not %s", c.scenario)
	}
	if c.sourceAddrs < 1 || c.sourceAddrs > maxSourceAddrs {
		return fmt.Errorf("--source-addrs %d: want 1 to %d", c.sourceAddrs, maxSourceAddrs)
	}
	if c.sourceAddrs > 1 {
		for _, a := range []string{c.xmppAddr, c.deviceAddr, c.httpAddr} {
			if err := checkIPv4Loopback(a); err != nil {
				return fmt.Errorf("--source-addrs %d: %w", c.sourceAddrs, err)
			}
		}
	}
	if c.restartCmd != "" && (c.scenario != scenarioOffline || c.data == "") {
		return errors.New("--restart-cmd needs --scenario offline and --data (the restarted ccsd's addresses come from its new run.json)")
	}
	if c.readyTimeout <= 0 {
		return errors.New("--ready-timeout must be positive")
	}
	if c.scenario == scenarioLogin && c.devices < c.conns {
		return fmt.Errorf("--scenario login: --devices %d must be at least --conns %d (a device holds one session at a time)", c.devices, c.conns)
	}
	return nil
}

// fromRunInfo fills the addresses not given on the command line from
// DATA/run.json, and --ca from DATA/cert.pem.
func (c *config) fromRunInfo() error {
	info, err := readRunInfo(c.data)
	if err != nil {
		return fmt.Errorf("--data: %w (is ccsd serve running on that directory?)", err)
	}
	fill := func(dst *string, v string) {
		if *dst == "" {
			*dst = v
		}
	}
	fill(&c.xmppAddr, info.XMPPAddr)
	fill(&c.deviceAddr, info.DeviceAddr)
	fill(&c.httpAddr, info.HTTPAddr)
	fill(&c.adminAddr, info.AdminAddr)
	fill(&c.ca, filepath.Join(c.data, "cert.pem"))
	c.pid, c.instance = info.PID, info.Instance
	return nil
}

// runInfo is what "ccsd serve" writes to DATA/run.json once it listens.
type runInfo struct {
	PID        int    `json:"pid"`
	XMPPAddr   string `json:"xmpp_addr"`
	DeviceAddr string `json:"device_addr"`
	HTTPAddr   string `json:"http_addr"`
	AdminAddr  string `json:"admin_addr"`
	Instance   string `json:"instance"`
}

// readRunInfo reads DIR/run.json.
func readRunInfo(dir string) (runInfo, error) {
	var info runInfo
	path := filepath.Join(dir, "run.json")
	b, err := os.ReadFile(path)
	if err != nil {
		return info, err
	}
	if err := json.Unmarshal(b, &info); err != nil {
		return info, fmt.Errorf("parse %s: %w", path, err)
	}
	return info, nil
}

// loadCA returns a TLS configuration that trusts only the certificates in
// file.
func loadCA(file string) (*tls.Config, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("--ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--ca %s holds no PEM certificate", file)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}
