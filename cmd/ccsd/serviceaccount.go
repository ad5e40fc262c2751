package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"

	"github.com/rs/zerolog"

	"github.com/ccsd/ccsd/auth"
	"github.com/ccsd/ccsd/fanout"
	"github.com/ccsd/ccsd/httpapi"
	"github.com/ccsd/ccsd/store"
	"github.com/ccsd/ccsd/store/bolt"
)

const serviceAccountUsage = `Usage:
  ccsd serviceaccount create --sender ID [--out FILE] [--token-uri URI] [--data DIR]
        make a Google-format service-account JSON key for the sender (printed,
        or written to FILE with mode 0600); ccsd keeps only its public key
  ccsd serviceaccount list --sender ID [--data DIR]
        list the sender's keys
  ccsd serviceaccount delete --sender ID [--data DIR] KEY_ID
        delete a key: its JWTs and the tokens they got stop working
`

// serviceAccountCmd is one parsed serviceaccount subcommand.
type serviceAccountCmd struct {
	sub, data, sender, out, tokenURI, keyID string
	log                                     logFlags
}

// registerServiceAccountFlags binds the flags of the subcommands.
func (c *serviceAccountCmd) register(fs *flag.FlagSet) {
	fs.StringVar(&c.data, "data", "./ccsd-data", "data directory of the server")
	fs.StringVar(&c.sender, "sender", "", "the sender id (the service account's project_id)")
	fs.StringVar(&c.out, "out", "", "create: write the key file here (mode 0600; refused if it exists) instead of printing it")
	fs.StringVar(&c.tokenURI, "token-uri", "", "create: the token_uri to write (default https://HOST:PORT/token of the running server's HTTPS listener, from run.json)")
	c.log.register(fs)
}

func runServiceAccount(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || (args[0] != "create" && args[0] != "list" && args[0] != "delete") {
		if len(args) > 0 && (args[0] == "help" || args[0] == "-h" || args[0] == "--help") {
			fmt.Fprint(stdout, serviceAccountUsage)
			return exitOK
		}
		fmt.Fprint(stderr, serviceAccountUsage)
		return exitUsage
	}
	c := &serviceAccountCmd{sub: args[0]}
	fs := newFlagSet("serviceaccount "+c.sub, "ccsd serviceaccount "+c.sub+" --sender ID [flags]", stderr)
	c.register(fs)
	pos, err := parseFlags(fs, args[1:])
	if err != nil {
		return flagError(err, stderr)
	}
	wantPos := 0
	if c.sub == "delete" {
		wantPos = 1
	}
	if c.sender == "" || len(pos) != wantPos {
		fmt.Fprint(stderr, serviceAccountUsage)
		return exitUsage
	}
	if wantPos == 1 {
		c.keyID = pos[0]
	}
	log, err := c.log.newLogger(stderr)
	if err != nil {
		fmt.Fprintln(stderr, "ccsd serviceaccount:", err)
		return exitUsage
	}
	activeLogger.Store(&log)
	if err := c.run(ctx, log, stdout); err != nil {
		log.Error().Err(err).Msg("serviceaccount " + c.sub + " failed")
		return exitFail
	}
	return exitOK
}

// run does the subcommand through the running server's admin endpoint,
// or on the store when no server answers.
func (c *serviceAccountCmd) run(ctx context.Context, log zerolog.Logger, stdout io.Writer) error {
	ops, closeOps, err := openServiceAccountOps(ctx, c.data, log)
	if err != nil {
		return err
	}
	defer closeOps()
	var out any
	switch c.sub {
	case "create":
		if c.out != "" {
			return c.createFile(ctx, ops, log)
		}
		f, err := ops.create(ctx, c.sender, c.tokenURI)
		if err != nil {
			return err
		}
		out = f
	case "list":
		if out, err = ops.list(ctx, c.sender); err != nil {
			return err
		}
	default:
		if err := ops.delete(ctx, c.sender, c.keyID); err != nil {
			return err
		}
		out = map[string]string{"deleted": c.keyID}
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// createFile makes the key and writes it to --out with mode 0600. The
// file is opened first, never over an existing one (it may hold another
// key): a key is never made whose private half could not be kept.
func (c *serviceAccountCmd) createFile(ctx context.Context, ops serviceAccountOps, log zerolog.Logger) error {
	fh, err := os.OpenFile(c.out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("write key file: %w", err)
	}
	f, err := ops.create(ctx, c.sender, c.tokenURI)
	var b []byte
	if err == nil {
		b, err = json.MarshalIndent(f, "", "  ")
	}
	if err == nil {
		_, err = fh.Write(append(b, '\n'))
	}
	if err = errors.Join(err, fh.Close()); err != nil {
		os.Remove(c.out)
		if f.PrivateKeyID != "" {
			err = fmt.Errorf("key %s was made but not written (delete it): %w", f.PrivateKeyID, err)
		}
		return err
	}
	log.Info().Str("file", c.out).Str("sender_id", f.ProjectID).Str("private_key_id", f.PrivateKeyID).Str("token_uri", f.TokenURI).
		Msg("service-account key written")
	return nil
}

// serviceAccountOps runs the subcommands on a server or a store.
type serviceAccountOps interface {
	create(ctx context.Context, sender, tokenURI string) (auth.ServiceAccountFile, error)
	list(ctx context.Context, sender string) ([]httpapi.ServiceKeyJSON, error)
	delete(ctx context.Context, sender, keyID string) error
}

// openServiceAccountOps is openSenderOps for the service accounts: the
// admin endpoint of run.json if it answers as that server, else the store
// (the token_uri then comes from --token-uri, or the last run.json, or
// serve's default --http-addr).
func openServiceAccountOps(ctx context.Context, dataDir string, log zerolog.Logger) (serviceAccountOps, func(), error) {
	info, err := readRunInfo(dataDir)
	if err == nil && info.AdminAddr != "" {
		c := &adminClient{base: "http://" + info.AdminAddr, http: &http.Client{Timeout: adminTimeout}}
		pctx, cancel := context.WithTimeout(ctx, pingTimeout)
		perr := c.ping(pctx, info.Instance)
		cancel()
		if perr == nil {
			return adminServiceAccounts{c}, func() {}, nil
		}
		log.Debug().Err(perr).Msg("admin endpoint in run.json does not answer; opening the store")
	}
	if _, err := os.Stat(dataDir); err != nil {
		return nil, nil, fmt.Errorf("data directory: %w", err)
	}
	db, err := bolt.Open(filepath.Join(dataDir, "ccsd.db"), bolt.Options{LockTimeout: offlineLockTimeout})
	if errors.Is(err, store.ErrLocked) {
		return nil, nil, fmt.Errorf("data directory %s is in use by a ccsd whose admin endpoint does not answer: retry once it is up: %w", dataDir, err)
	}
	if err != nil {
		return nil, nil, err
	}
	addr := info.HTTPAddr
	if addr == "" {
		addr = "127.0.0.1:8443" // serve's default --http-addr
	}
	return localServiceAccounts{auth.NewServiceAccounts(db, auth.ServiceAccountLimits{}), tokenURIFor(addr)}, func() { db.Close() }, nil
}

// tokenURIFor is the token_uri of an HTTPS listener bound to addr:
// https://HOST:PORT/token, with localhost for an unspecified host (every
// interface), which ccsd's own certificate covers.
func tokenURIFor(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "https://" + addr + "/token"
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "localhost"
	}
	return "https://" + net.JoinHostPort(host, port) + "/token"
}

type localServiceAccounts struct {
	a        *auth.ServiceAccounts
	tokenURI string
}

func (l localServiceAccounts) create(ctx context.Context, sender, tokenURI string) (auth.ServiceAccountFile, error) {
	if tokenURI == "" {
		tokenURI = l.tokenURI
	}
	return l.a.Create(ctx, sender, tokenURI)
}

func (l localServiceAccounts) list(_ context.Context, sender string) ([]httpapi.ServiceKeyJSON, error) {
	keys, err := l.a.Keys(sender)
	out := make([]httpapi.ServiceKeyJSON, 0, len(keys))
	for _, k := range keys {
		out = append(out, httpapi.ServiceKeyJSON{PrivateKeyID: k.ID, ClientEmail: k.ClientEmail, TokenURI: k.TokenURI, Created: k.Created.UTC()})
	}
	return out, err
}

func (l localServiceAccounts) delete(ctx context.Context, sender, keyID string) error {
	return l.a.DeleteKey(ctx, sender, keyID)
}

type adminServiceAccounts struct{ c *adminClient }

func (a adminServiceAccounts) create(ctx context.Context, sender, tokenURI string) (auth.ServiceAccountFile, error) {
	var out auth.ServiceAccountFile
	err := a.c.call(ctx, "POST", "/admin/senders/"+url.PathEscape(sender)+"/serviceaccounts", httpapi.CreateServiceAccountRequest{TokenURI: tokenURI}, &out)
	return out, err
}

func (a adminServiceAccounts) list(ctx context.Context, sender string) ([]httpapi.ServiceKeyJSON, error) {
	out := []httpapi.ServiceKeyJSON{}
	err := a.c.call(ctx, "GET", "/admin/senders/"+url.PathEscape(sender)+"/serviceaccounts", nil, &out)
	return out, err
}

func (a adminServiceAccounts) delete(ctx context.Context, sender, keyID string) error {
	var out struct{}
	return a.c.call(ctx, "DELETE", "/admin/senders/"+url.PathEscape(sender)+"/serviceaccounts/"+url.PathEscape(keyID), nil, &out)
}

// serviceAccountFlagNames holds the flags of the serviceaccount commands,
// so that "ccsd serve" does not call their CCSD_* variables unknown.
func serviceAccountFlagNames() *flag.FlagSet {
	fs := flag.NewFlagSet("serviceaccount", flag.ContinueOnError)
	var c serviceAccountCmd
	c.register(fs)
	return fs
}

// mountServiceAccounts wires the HTTP v1 credentials: POST /token, the v1
// send, Bearer tokens on the Instance ID API and the admin endpoints.
func mountServiceAccounts(accounts *auth.ServiceAccounts, api *httpapi.API, admin *httpapi.Admin, iid *httpapi.IIDHandler,
	router *fanout.Router, logins httpapi.LoginLimiter, httpAddr string, log zerolog.Logger) {
	httpapi.NewTokenHandler(accounts, logins, log).Mount(api)
	httpapi.NewV1Handler(router, accounts, logins, log).Mount(api)
	iid.AcceptBearer(accounts)
	httpapi.NewServiceAccountAdmin(accounts, tokenURIFor(httpAddr)).Mount(admin)
}
