package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/rs/zerolog"

	"github.com/ccsd/ccsd/device"
)

const deviceUsage = `Usage:
  ccsd device register --sender ID --app PKG [--state FILE]
        check in (or reuse the device in FILE) and register the app; prints the registration id
  ccsd device listen [--state FILE] [--json] [--count N]
        print each message as it arrives and ack it; reconnects by itself (Ctrl-C ends it)
  ccsd device send --to SENDER|NOTIFICATION_KEY [--app PKG] --data k=v [--data k=v ...]
        send upstream; exits 0 once ccsd acks it, 1 with the nack code otherwise
  ccsd device unregister [--sender ID --app PKG] [--state FILE]
        remove a registration (the only one of the device if none is named)

Every device command finds the server through --data DIR (default ./ccsd-data:
its run.json and cert.pem), or --http-addr, --device-addr and --ca. The device
(identity and registrations) is kept in --state FILE, default DIR/device.json.
In "send", a --data value holding "=" is a payload field, any other a directory.
`

// deviceSynopsis is the usage line of each device subcommand.
var deviceSynopsis = map[string]string{
	"register":   "ccsd device register --sender ID --app PKG [--state FILE] [--data DIR]",
	"listen":     "ccsd device listen [--state FILE] [--json] [--count N] [--data DIR]",
	"send":       "ccsd device send --to SENDER|NOTIFICATION_KEY [--app PKG] --data k=v [--data k=v ...] [--data DIR]",
	"unregister": "ccsd device unregister [--sender ID --app PKG] [--state FILE] [--data DIR]",
}

func runDevice(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, deviceUsage)
		return exitUsage
	}
	sub := args[0]
	synopsis, known := deviceSynopsis[sub]
	switch {
	case sub == "help" || sub == "-h" || sub == "-help" || sub == "--help":
		fmt.Fprint(stdout, deviceUsage)
		return exitOK
	case !known:
		fmt.Fprintf(stderr, "ccsd device: unknown subcommand %q\n\n%s", sub, deviceUsage)
		return exitUsage
	}
	cmd := &deviceCmd{sub: sub, stdout: stdout}
	fs := newFlagSet("device "+sub, synopsis, stderr)
	cmd.register(fs)
	pos, err := parseFlags(fs, args[1:])
	if err != nil {
		return flagError(err, stderr)
	}
	if len(pos) != 0 {
		fmt.Fprintf(stderr, "ccsd device %s: unexpected argument %q\nUsage: %s\n", sub, pos[0], synopsis)
		return exitUsage
	}
	if msg := cmd.usageError(); msg != "" {
		fmt.Fprintf(stderr, "ccsd device %s: %s\nUsage: %s\n", sub, msg, synopsis)
		return exitUsage
	}
	log, err := cmd.log.newLogger(stderr)
	if err != nil {
		fmt.Fprintln(stderr, "ccsd device:", err)
		return exitUsage
	}
	activeLogger.Store(&log)
	if err := cmd.run(ctx, log); err != nil {
		log.Error().Err(err).Msg("device " + sub + " failed")
		return exitFail
	}
	return exitOK
}

// deviceCmd is one parsed device subcommand.
type deviceCmd struct {
	sub    string
	stdout io.Writer

	where       deviceWhere
	state       string
	sender, app string // register, unregister; app also send
	to, id      string // send
	collapseKey string // send
	ttl         int64  // send: -1 = ccsd's default
	fields      map[string]any
	json        bool // listen
	count       int  // listen
	log         logFlags
	timeout     time.Duration // send
}

// deviceWhere is how a device command finds the server.
type deviceWhere struct {
	data, httpAddr, deviceAddr, ca string
}

// register adds the subcommand's flags to fs.
func (c *deviceCmd) register(fs *flag.FlagSet) {
	if c.sub == "send" {
		c.fields = map[string]any{}
		fs.Var(&sendDataFlag{dir: &c.where.data, fields: c.fields}, "data", "a payload field k=v (repeatable), or the data directory of the server (default ./ccsd-data)")
		c.where.data = "./ccsd-data"
	} else {
		fs.StringVar(&c.where.data, "data", "./ccsd-data", "data directory of the server: its run.json (addresses) and cert.pem (trust)")
	}
	fs.StringVar(&c.where.httpAddr, "http-addr", "", "the server's HTTPS address (default: from DIR/run.json)")
	fs.StringVar(&c.where.deviceAddr, "device-addr", "", "the server's device XMPP address (default: from DIR/run.json)")
	fs.StringVar(&c.where.ca, "ca", "", "PEM file of the certificate to trust (default: DIR/cert.pem)")
	fs.StringVar(&c.state, "state", "", "the device's state file (default: DIR/device.json)")
	switch c.sub {
	case "register", "unregister":
		fs.StringVar(&c.sender, "sender", "", "the sender id (project number) the app registers for")
		fs.StringVar(&c.app, "app", "", "the app's package name, e.g. com.example.chat")
	case "send":
		fs.StringVar(&c.to, "to", "", "a sender id (to its app servers) or a notification_key (to the group's other devices)")
		fs.StringVar(&c.app, "app", "", "the sending app (default: the device's registration for --to, or its only one)")
		fs.StringVar(&c.id, "id", "", "the message_id (default: a new unique one)")
		fs.StringVar(&c.collapseKey, "collapse-key", "", "collapse_key (to a group: replaces the members' undelivered message of that key)")
		fs.Int64Var(&c.ttl, "ttl", -1, "time_to_live in seconds (default: ccsd's, one day; 0: now or never)")
		fs.DurationVar(&c.timeout, "timeout", 30*time.Second, "how long to wait for the connection and ccsd's answer")
	case "listen":
		fs.BoolVar(&c.json, "json", false, "print each message as one line of JSON, the payload as received")
		fs.IntVar(&c.count, "count", 0, "exit after this many messages (0: run until interrupted)")
	}
	c.log.register(fs)
}

// usageError checks the flags a subcommand needs.
func (c *deviceCmd) usageError() string {
	switch {
	case c.sub == "register" && (c.sender == "" || c.app == ""):
		return "--sender and --app are required"
	case c.sub == "unregister" && (c.sender == "") != (c.app == ""):
		return "name both --sender and --app, or neither (the device's only registration)"
	case c.sub == "send" && c.to == "":
		return "--to is required"
	case c.sub == "listen" && c.count < 0:
		return "--count must be 0 or more"
	}
	return ""
}

// config builds the device client's configuration.
func (c *deviceCmd) config(log zerolog.Logger) (device.Config, error) {
	w := c.where
	ca := w.ca
	if ca == "" {
		ca = filepath.Join(w.data, "cert.pem")
	}
	pool, err := device.CertPool(ca)
	if err != nil {
		return device.Config{}, fmt.Errorf("%w (start the server with \"make run\" or \"ccsd serve --data %s\", or name the certificate with --ca)", err, w.data)
	}
	cfg := device.Config{TLS: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	if w.httpAddr != "" && w.deviceAddr != "" {
		cfg.Locate = nil
		cfg.Addrs = device.Addrs{HTTP: w.httpAddr, Device: w.deviceAddr}
	} else {
		cfg.Locate = func() (device.Addrs, error) {
			a, err := device.ReadRunJSON(w.data)
			if err != nil {
				return a, fmt.Errorf("%w (or give --http-addr and --device-addr)", err)
			}
			a.HTTP = cmp(w.httpAddr, a.HTTP)
			a.Device = cmp(w.deviceAddr, a.Device)
			return a, nil
		}
	}
	cfg.StateFile = cmp(c.state, filepath.Join(w.data, "device.json"))
	cfg.Logger = slogFor(log)
	return cfg, nil
}

// cmp returns a unless it is empty, else b.
func cmp(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// run does the subcommand.
func (c *deviceCmd) run(ctx context.Context, log zerolog.Logger) error {
	cfg, err := c.config(log)
	if err != nil {
		return err
	}
	switch c.sub {
	case "register":
		return c.doRegister(ctx, cfg)
	case "unregister":
		return c.doUnregister(ctx, cfg)
	case "listen":
		return c.doListen(ctx, cfg, log)
	default:
		return c.doSend(ctx, cfg)
	}
}

func (c *deviceCmd) doRegister(ctx context.Context, cfg device.Config) error {
	d, err := device.New(cfg)
	if err != nil {
		return err
	}
	token, err := d.Register(ctx, c.sender, c.app)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(c.stdout, token)
	return err
}

func (c *deviceCmd) doUnregister(ctx context.Context, cfg device.Config) error {
	d, err := device.New(cfg)
	if err != nil {
		return err
	}
	sender, app := c.sender, c.app
	if sender == "" {
		r, err := onlyRegistration(d.State(), cfg.StateFile)
		if err != nil {
			return err
		}
		sender, app = r.Sender, r.App
	}
	return d.Unregister(ctx, sender, app)
}

// onlyRegistration is the device's registration when it has exactly one.
func onlyRegistration(s device.State, file string) (device.Registration, error) {
	switch len(s.Registrations) {
	case 1:
		return s.Registrations[0], nil
	case 0:
		return device.Registration{}, fmt.Errorf("the device of %s has no registration (ccsd device register first)", file)
	}
	return device.Registration{}, errors.New("the device has several registrations: name one with --sender and --app")
}

// deviceFlagNames is a flag set holding every flag of the device
// commands, so that "ccsd serve" does not call their CCSD_* variables
// unknown.
func deviceFlagNames() *flag.FlagSet {
	fs := flag.NewFlagSet("device", flag.ContinueOnError)
	for _, sub := range []string{"register", "listen", "send"} {
		c := &deviceCmd{sub: sub}
		sfs := flag.NewFlagSet(sub, flag.ContinueOnError)
		c.register(sfs)
		sfs.VisitAll(func(f *flag.Flag) {
			if fs.Lookup(f.Name) == nil {
				fs.Var(f.Value, f.Name, f.Usage)
			}
		})
	}
	return fs
}
