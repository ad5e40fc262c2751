package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/rs/zerolog"

	"github.com/ccsd/ccsd/auth"
	"github.com/ccsd/ccsd/httpapi"
	"github.com/ccsd/ccsd/store"
	"github.com/ccsd/ccsd/store/bolt"
)

// offlineLockTimeout is how long a sender subcommand waits for the database
// lock when no server answers: short, so that a locked store gives a clear
// error at once instead of a hang.
const offlineLockTimeout = 500 * time.Millisecond

// adminTimeout bounds one call to a running server's admin endpoint;
// pingTimeout bounds the first one, which only asks whether the server in
// run.json is there: a live server answers /healthz in microseconds, and a
// stopped one (SIGSTOP) would otherwise hold the command for adminTimeout.
const (
	adminTimeout = 5 * time.Second
	pingTimeout  = time.Second
)

const senderUsage = `Usage:
  ccsd sender create [--id ID] [--env] [--data DIR]
                                              create a sender; prints {"sender_id", "api_key"}
                                              (--env: export SENDER=... KEY=... lines)
  ccsd sender list [--data DIR]               list senders as JSON
  ccsd sender revoke [--data DIR] ID          revoke a sender's API key
  ccsd sender delete [--force] [--data DIR] ID
                                              delete a sender (refused while registrations name it,
                                              unless --force, which unregisters them)
  ccsd sender set [--data DIR] --group-copies=true|false ID
                                              set a sender's options; prints the sender
`

func runSender(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, senderUsage)
		return exitUsage
	}
	sub := args[0]
	synopsis, known := senderSynopsis[sub]
	switch {
	case sub == "help" || sub == "-h" || sub == "-help" || sub == "--help":
		fmt.Fprint(stdout, senderUsage)
		return exitOK
	case !known:
		fmt.Fprintf(stderr, "ccsd sender: unknown subcommand %q\n\n%s", sub, senderUsage)
		return exitUsage
	}
	cmd, code := parseSenderArgs(sub, synopsis, args[1:], stderr)
	if cmd == nil {
		return code
	}
	log, err := cmd.log.newLogger(stderr)
	if err != nil {
		fmt.Fprintln(stderr, "ccsd sender:", err)
		return exitUsage
	}
	activeLogger.Store(&log)
	out, err := cmd.run(ctx, log)
	if err != nil {
		log.Error().Err(err).Msg("sender " + sub + " failed")
		return exitFail
	}
	if cmd.env {
		return writeEnv(stdout, out, log)
	}
	enc := json.NewEncoder(stdout)
	if sub == "list" {
		enc.SetIndent("", "  ")
	}
	if err := enc.Encode(out); err != nil {
		log.Error().Err(err).Msg("write result")
		return exitFail
	}
	return exitOK
}

// senderSynopsis is the usage line of each sender subcommand.
var senderSynopsis = map[string]string{
	"create": "ccsd sender create [--id ID] [--env] [--data DIR]",
	"list":   "ccsd sender list [--data DIR]",
	"revoke": "ccsd sender revoke [--data DIR] ID",
	"delete": "ccsd sender delete [--force] [--data DIR] ID",
	"set":    "ccsd sender set [--data DIR] --group-copies=true|false ID",
}

// senderCmd is one parsed sender subcommand.
type senderCmd struct {
	sub, data, id string // id: --id of create, or the ID argument of revoke and set
	env           bool   // create --env: print shell export lines
	force         bool   // delete --force: unregister its registrations
	opts          optionFlags
	log           logFlags
}

// parseSenderArgs parses a subcommand's flags and arguments; on a usage
// error it has said why on stderr and returns nil with the exit code.
func parseSenderArgs(sub, synopsis string, args []string, stderr io.Writer) (*senderCmd, int) {
	c := &senderCmd{sub: sub}
	fs := newFlagSet("sender "+sub, synopsis, stderr)
	fs.StringVar(&c.data, "data", "./ccsd-data", "data directory of the server")
	if sub == "create" {
		fs.StringVar(&c.id, "id", "", "sender id to create (default: a random 12-digit number)")
		fs.BoolVar(&c.env, "env", false, "print \"export SENDER=... KEY=...\" lines for a shell (eval \"$(ccsd sender create --env)\") instead of JSON")
	}
	if sub == "set" {
		c.opts.register(fs)
	}
	if sub == "delete" {
		fs.BoolVar(&c.force, "force", false, "delete a sender that live registrations still name, unregistering them (their queued messages are dropped)")
	}
	c.log.register(fs)
	pos, err := parseFlags(fs, args)
	if err != nil {
		return nil, flagError(err, stderr)
	}
	oneID := sub == "revoke" || sub == "set" || sub == "delete"
	switch {
	case oneID && len(pos) != 1:
		fmt.Fprintf(stderr, "Usage: %s\n", synopsis)
		return nil, exitUsage
	case sub == "set" && !c.opts.any():
		fmt.Fprintf(stderr, "ccsd sender set: name an option to set (--group-copies=true|false)\nUsage: %s\n", synopsis)
		return nil, exitUsage
	case !oneID && len(pos) != 0:
		fmt.Fprintf(stderr, "ccsd sender %s: unexpected argument %q\n", sub, pos[0])
		return nil, exitUsage
	}
	if oneID {
		c.id = pos[0]
	}
	return c, 0
}

// run does the subcommand, through the running server or on the store.
func (c *senderCmd) run(ctx context.Context, log zerolog.Logger) (any, error) {
	ops, closeOps, err := openSenderOps(ctx, c.data, c.sub == "create", log)
	if err != nil {
		return nil, err
	}
	defer closeOps()
	switch c.sub {
	case "create":
		return ops.create(ctx, c.id)
	case "list":
		return ops.list(ctx)
	case "revoke":
		return ops.revoke(ctx, c.id)
	case "delete":
		return ops.delete(ctx, c.id, c.force)
	default: // set
		return ops.set(ctx, c.id, c.opts.options())
	}
}

// senderOps runs the sender subcommands, either through a running server's
// admin endpoint or on the store directly. Errors wrap the auth sentinel
// errors (ErrSenderExists, ErrUnknownSender, ErrInvalidSenderID) either way.
type senderOps interface {
	create(ctx context.Context, id string) (httpapi.CreateSenderResponse, error)
	list(ctx context.Context) ([]httpapi.SenderJSON, error)
	revoke(ctx context.Context, id string) (httpapi.SenderJSON, error)
	set(ctx context.Context, id string, o httpapi.SenderOptions) (httpapi.SenderJSON, error)
	delete(ctx context.Context, id string, force bool) (senderDeleted, error)
}

// openSenderOps picks how to reach the senders of the data directory: the
// admin endpoint named in run.json if it answers as that server, else the
// store opened directly. A store held by a server that does not answer is a
// clear error, after at most offlineLockTimeout.
func openSenderOps(ctx context.Context, dataDir string, create bool, log zerolog.Logger) (senderOps, func(), error) {
	info, err := readRunInfo(dataDir)
	var pingErr error // why the server run.json names did not answer
	switch {
	case err == nil && info.AdminAddr != "":
		c := &adminClient{base: "http://" + info.AdminAddr, http: &http.Client{Timeout: adminTimeout}}
		pctx, cancel := context.WithTimeout(ctx, pingTimeout)
		err := c.ping(pctx, info.Instance)
		cancel()
		pingErr = err
		if err == nil {
			log.Debug().Str("admin_addr", info.AdminAddr).Msg("using the running server's admin endpoint")
			return c, func() {}, nil
		}
		log.Debug().Err(err).Str("admin_addr", info.AdminAddr).Msg("admin endpoint in run.json does not answer; opening the store")
	case err != nil && !errors.Is(err, os.ErrNotExist):
		log.Debug().Err(err).Msg("ignoring run.json")
	}

	if create {
		if err := os.MkdirAll(dataDir, 0o700); err != nil {
			return nil, nil, fmt.Errorf("create data directory: %w", err)
		}
	} else if _, err := os.Stat(dataDir); err != nil {
		return nil, nil, fmt.Errorf("data directory: %w", err)
	}
	db, err := bolt.Open(filepath.Join(dataDir, "ccsd.db"), bolt.Options{LockTimeout: offlineLockTimeout})
	if errors.Is(err, store.ErrLocked) {
		if pingErr != nil {
			return nil, nil, fmt.Errorf("data directory %s is in use by ccsd pid %d, whose admin endpoint %s did not answer within %v (is it stopped or overloaded?): %w",
				dataDir, info.PID, info.AdminAddr, pingTimeout, err)
		}
		return nil, nil, fmt.Errorf("data directory %s is in use by a ccsd that wrote no usable %s (still starting?): retry once it is up: %w",
			dataDir, runInfoFile, err)
	}
	if err != nil {
		return nil, nil, err
	}
	return localSenders{auth.NewSenders(db), db}, func() { db.Close() }, nil
}

// localSenders runs the subcommands on an open store.
type localSenders struct {
	s  *auth.Senders
	db store.SenderDeleter
}

func (l localSenders) create(_ context.Context, id string) (httpapi.CreateSenderResponse, error) {
	s, key, err := l.s.Create(id)
	return httpapi.CreateSenderResponse{SenderID: s.ID, APIKey: key}, err
}

func (l localSenders) list(context.Context) ([]httpapi.SenderJSON, error) {
	list, err := l.s.List()
	out := make([]httpapi.SenderJSON, 0, len(list))
	for _, s := range list {
		out = append(out, localJSON(s))
	}
	return out, err
}

func (l localSenders) revoke(_ context.Context, id string) (httpapi.SenderJSON, error) {
	if err := l.s.Revoke(id); err != nil {
		return httpapi.SenderJSON{}, err
	}
	s, err := l.s.Get(id)
	return localJSON(s), err
}

func (l localSenders) set(_ context.Context, id string, o httpapi.SenderOptions) (httpapi.SenderJSON, error) {
	s, err := l.s.SetGroupCopies(id, *o.GroupCopies)
	return localJSON(s), err
}

// localJSON is a sender as the admin endpoint would show it.
func localJSON(s auth.Sender) httpapi.SenderJSON {
	return httpapi.SenderJSON{SenderID: s.ID, Created: s.Created.UTC(), Revoked: s.Revoked, GroupCopies: s.GroupCopies}
}

// adminClient runs the subcommands through a running server's admin
// endpoint.
type adminClient struct {
	base string
	http *http.Client
}

// ping checks that the endpoint answers /healthz as the server run that
// wrote run.json (same instance id), not some other process on that port.
func (c *adminClient) ping(ctx context.Context, instance string) error {
	var h httpapi.Health
	if err := c.call(ctx, "GET", "/healthz", nil, &h); err != nil {
		return err
	}
	if h.Status != "ok" || (instance != "" && h.Instance != instance) {
		return fmt.Errorf("admin endpoint %s belongs to another server (instance %q, want %q)", c.base, h.Instance, instance)
	}
	return nil
}

func (c *adminClient) create(ctx context.Context, id string) (httpapi.CreateSenderResponse, error) {
	var out httpapi.CreateSenderResponse
	err := c.call(ctx, "POST", "/admin/senders", httpapi.CreateSenderRequest{ID: id}, &out)
	return out, err
}

func (c *adminClient) list(ctx context.Context) ([]httpapi.SenderJSON, error) {
	out := []httpapi.SenderJSON{}
	err := c.call(ctx, "GET", "/admin/senders", nil, &out)
	return out, err
}

func (c *adminClient) revoke(ctx context.Context, id string) (httpapi.SenderJSON, error) {
	var out httpapi.SenderJSON
	err := c.call(ctx, "POST", "/admin/senders/"+url.PathEscape(id)+"/revoke", nil, &out)
	return out, err
}

func (c *adminClient) set(ctx context.Context, id string, o httpapi.SenderOptions) (httpapi.SenderJSON, error) {
	var out httpapi.SenderJSON
	err := c.call(ctx, "PATCH", "/admin/senders/"+url.PathEscape(id), o, &out)
	return out, err
}

// optionFlags are the flags of "ccsd sender set": each is applied only
// when given, so that setting one option never resets another.
type optionFlags struct {
	groupCopies boolValue
}

func (o *optionFlags) register(fs *flag.FlagSet) {
	fs.Var(&o.groupCopies, "group-copies", "true: the sender's app servers get a copy of each message a device sends to its group (upstream, \"to\": the notification_key); false: they do not (the default)")
}

func (o *optionFlags) any() bool { return o.groupCopies.set }

func (o *optionFlags) options() httpapi.SenderOptions {
	var out httpapi.SenderOptions
	if o.groupCopies.set {
		v := o.groupCopies.v
		out.GroupCopies = &v
	}
	return out
}

// boolValue is a bool flag that knows whether it was given.
type boolValue struct{ v, set bool }

func (b *boolValue) String() string { return strconv.FormatBool(b.v) }

// Set parses the value as strconv.ParseBool does.
func (b *boolValue) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return fmt.Errorf("want true or false: %w", err)
	}
	b.v, b.set = v, true
	return nil
}

// IsBoolFlag lets --group-copies alone mean true, as for flag.Bool.
func (b *boolValue) IsBoolFlag() bool { return true }

// call sends one JSON request and decodes a 2xx answer into out. An error
// answer becomes an error wrapping the matching auth sentinel.
func (c *adminClient) call(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return fmt.Errorf("admin %s %s: %w", method, path, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("admin %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("admin %s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		msg := string(bytes.TrimSpace(b))
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		err := fmt.Errorf("admin %s %s: %s: %s", method, path, resp.Status, msg)
		switch resp.StatusCode {
		case http.StatusConflict:
			err = fmt.Errorf("%w (%w)", auth.ErrSenderExists, err)
		case http.StatusNotFound:
			err = fmt.Errorf("%w (%w)", auth.ErrUnknownSender, err)
		case http.StatusBadRequest:
			err = fmt.Errorf("%w (%w)", auth.ErrInvalidSenderID, err)
		}
		return err
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("admin %s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// senderFlagNames is a flag set holding every flag of the sender commands,
// so that "ccsd serve" does not call their CCSD_* variables unknown.
func senderFlagNames() *flag.FlagSet {
	fs := flag.NewFlagSet("sender", flag.ContinueOnError)
	fs.String("data", "", "")
	fs.String("id", "", "")
	fs.Bool("env", false, "")
	fs.Bool("force", false, "")
	var o optionFlags
	o.register(fs)
	var lf logFlags
	lf.register(fs)
	return fs
}
