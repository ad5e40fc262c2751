package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// Exit codes.
const (
	exitOK    = 0
	exitFail  = 1 // the command failed
	exitUsage = 2 // bad command line
)

// version is the release version, set at build time with
// -ldflags "-X main.version=v1.2.3".
var version = "dev"

const usageText = `ccsd: a self-hosted GCM/FCM Cloud Connection Server (XMPP + HTTP).

Usage:
  ccsd serve [flags]                          run the server
  ccsd sender create [--id ID] [--data DIR]   create a sender; prints {"sender_id", "api_key"}
  ccsd sender list [--data DIR]               list senders
  ccsd sender revoke [--data DIR] ID          revoke a sender's API key
  ccsd sender delete [--force] [--data DIR] ID
                                              delete a sender (--force: and its registrations)
  ccsd device register|listen|send|unregister a device for testing an app server
                                              (ccsd device help)
  ccsd serviceaccount create --sender ID [--out FILE]
                                              make a service-account JSON key (FCM HTTP v1)
  ccsd serviceaccount list|delete --sender ID list or delete the sender's keys
  ccsd version                                print the version
  ccsd help                                   print this help

Run "ccsd serve -h" or "ccsd sender create -h" for the flags of a command.
Every flag can be set with the environment variable CCSD_<FLAG> (e.g.
--xmpp-addr is CCSD_XMPP_ADDR); a flag on the command line wins.
`

// run is the whole program: it runs the command in args and returns the
// exit code. Cancelling ctx stops "serve" gracefully.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usageText)
		return exitUsage
	}
	switch args[0] {
	case "serve":
		return runServe(ctx, args[1:], stdout, stderr)
	case "sender":
		return runSender(ctx, args[1:], stdout, stderr)
	case "device":
		return runDevice(ctx, args[1:], stdout, stderr)
	case "serviceaccount":
		return runServiceAccount(ctx, args[1:], stdout, stderr)
	case "version", "-version", "--version":
		fmt.Fprintf(stdout, "ccsd %s %s %s/%s\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return exitOK
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usageText)
		return exitOK
	default:
		fmt.Fprintf(stderr, "ccsd: unknown command %q\n\n%s", args[0], usageText)
		return exitUsage
	}
}

// logFlags are the logging flags every command takes.
type logFlags struct {
	level  string
	format string
}

func (l *logFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&l.level, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&l.format, "log-format", "", "log format: json or console (default: console when stderr is a terminal, else json)")
}

// newLogger builds the logger the flags ask for, writing to stderr.
func (l *logFlags) newLogger(stderr io.Writer) (zerolog.Logger, error) {
	level := zerolog.InfoLevel
	if l.level != "" {
		var err error
		level, err = zerolog.ParseLevel(strings.ToLower(l.level))
		if err != nil || level == zerolog.NoLevel {
			return zerolog.Nop(), fmt.Errorf("--log-level %q: want debug, info, warn or error", l.level)
		}
	}
	w := stderr
	switch strings.ToLower(l.format) {
	case "":
		if isTerminal(stderr) {
			w = zerolog.ConsoleWriter{Out: stderr, TimeFormat: time.TimeOnly}
		}
	case "console":
		w = zerolog.ConsoleWriter{Out: stderr, TimeFormat: time.TimeOnly, NoColor: !isTerminal(stderr)}
	case "json":
	default:
		return zerolog.Nop(), fmt.Errorf("--log-format %q: want json or console", l.format)
	}
	return zerolog.New(w).Level(level).With().Timestamp().Logger(), nil
}

// isTerminal reports whether w is a character device such as a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// parseFlags parses args with fs, allowing flags after positional
// arguments ("sender revoke ID --data DIR"), then fills every flag not given
// on the command line from its environment variable CCSD_<FLAG>. It returns
// the positional arguments. flag.ErrHelp means -h was asked for.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	pos, _, err := parseFlagsEnv(fs, args)
	return pos, err
}

// parseFlagsEnv is parseFlags that also tells which flags took their value
// from the environment, so that a later complaint about a value can name
// the variable the user actually set.
func parseFlagsEnv(fs *flag.FlagSet, args []string) (pos []string, fromEnv map[string]bool, err error) {
	for {
		if err := fs.Parse(args); err != nil {
			return nil, nil, err
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	fromEnv = map[string]bool{}
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] {
			return
		}
		name := envName(f.Name)
		if v, ok := os.LookupEnv(name); ok {
			fromEnv[f.Name] = true
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %w (want %s, like --%s's default %q)", name, v, err, valueKind(f), f.Name, f.DefValue))
			}
		}
	})
	if len(errs) > 0 {
		return nil, nil, envError{errors.Join(errs...)}
	}
	return pos, fromEnv, nil
}

// valueKind says in words what a flag's value looks like.
func valueKind(f *flag.Flag) string {
	switch fmt.Sprintf("%T", f.Value) {
	case "*flag.durationValue":
		return "a duration such as 500ms, 10s, 2m or 1h30m"
	case "*flag.intValue", "*flag.int64Value", "*flag.uintValue", "*flag.uint64Value":
		return "a whole number"
	case "*flag.boolValue":
		return "true or false"
	default:
		return "a string"
	}
}

// unknownEnv lists the CCSD_* variables of the environment that no flag of
// the given sets reads: most likely misspelt, and otherwise silently
// ignored.
func unknownEnv(sets ...*flag.FlagSet) []string {
	known := map[string]bool{}
	for _, fs := range sets {
		fs.VisitAll(func(f *flag.Flag) { known[envName(f.Name)] = true })
	}
	var out []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "CCSD_") && !known[name] {
			out = append(out, name)
		}
	}
	return out
}

// fromEnvNames rewrites "--flag" in a complaint about flag values as
// "CCSD_FLAG" for the flags whose value came from the environment.
func fromEnvNames(err error, fromEnv map[string]bool) error {
	text := err.Error()
	changed := false
	for name := range fromEnv {
		if strings.Contains(text, "--"+name+" ") {
			text = strings.ReplaceAll(text, "--"+name+" ", envName(name)+" ")
			changed = true
		}
	}
	if !changed {
		return err
	}
	return errors.New(text)
}

// envError is a bad value in a CCSD_* environment variable.
type envError struct{ err error }

func (e envError) Error() string { return e.err.Error() }
func (e envError) Unwrap() error { return e.err }

// envName is the environment variable of a flag: "xmpp-addr" ->
// "CCSD_XMPP_ADDR".
func envName(flagName string) string {
	return "CCSD_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// newFlagSet returns a flag set that reports errors and usage on stderr.
func newFlagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: %s\n\nFlags (each also settable as CCSD_<FLAG>):\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// flagError turns a parseFlags error into an exit code.
func flagError(err error, stderr io.Writer) int {
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	// The flag package already printed its own parse errors and the usage;
	// errors from the environment are printed here.
	var ee envError
	if errors.As(err, &ee) {
		fmt.Fprintln(stderr, "ccsd:", err)
	}
	return exitUsage
}
