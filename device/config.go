package device

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// Defaults of the Config fields left zero.
const (
	DefaultDomain       = "gcm.googleapis.com"
	DefaultKeepalive    = 4 * time.Minute // ccsd closes a session silent for 10 minutes
	DefaultPingTimeout  = 30 * time.Second
	DefaultMinBackoff   = 500 * time.Millisecond
	DefaultMaxBackoff   = time.Minute
	DefaultDedupWindow  = 10000
	DefaultDialTimeout  = 20 * time.Second
	DefaultWriteTimeout = 10 * time.Second
	// DefaultRateLimitRetries is how many times a call refused with 429
	// is tried again (Config.RateLimitRetries).
	DefaultRateLimitRetries = 5
	// UpstreamWindow is how many upstream messages Send keeps unanswered on
	// a session: ccsd nacks more than 100 with SERVICE_UNAVAILABLE, so
	// Send waits for a slot instead.
	UpstreamWindow = 100
)

// Addrs says where a ccsd listens.
type Addrs struct {
	HTTP   string // host:port of its HTTPS listener (/checkin, /c2dm/register3)
	Device string // host:port of its device XMPP listener (direct TLS)
}

// Config configures a Client. Only the addresses (or Locate) are
// required; every zero field takes its default.
type Config struct {
	// Addrs is where the server listens, unless Locate is set.
	Addrs Addrs
	// Locate, if set, is asked where the server listens before every
	// HTTPS request and every connection attempt, in place of Addrs:
	// FromDataDir reads run.json with it, so that a server restarted on
	// other ports (port 0 in tests) is found again.
	Locate func() (Addrs, error)
	// TLS is the TLS configuration of both HTTPS and XMPP: RootCAs holding
	// ccsd's certificate, typically. nil means the system's roots. An
	// empty ServerName is the host of the address dialled.
	TLS *tls.Config
	// StateFile is where the device's identity and registrations are
	// kept (written with mode 0600). Empty: in memory only, a new device
	// each process.
	StateFile string
	// Handler receives the downstream messages; nil acks them unseen.
	Handler Handler
	// Domain is the XMPP domain ("to" of the stream): gcm.googleapis.com.
	Domain string
	// Keepalive is how often an XMPP ping goes to the server, which must
	// answer (anything) within PingTimeout or the session is taken for
	// dead and a new one is made. Keepalive must stay below ccsd's 10
	// minutes of silence.
	Keepalive, PingTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait before a reconnection: it
	// doubles with each failed attempt, from MinBackoff to MaxBackoff,
	// and a random fraction of it is waited (full jitter), so that many
	// devices cut off at once do not come back at once. A session that
	// got online resets it.
	MinBackoff, MaxBackoff time.Duration
	// DedupWindow is how many handled message ids (per registration) are
	// remembered to drop a message delivered again.
	DedupWindow int
	// DialTimeout bounds the TCP and TLS connection and the XMPP login;
	// WriteTimeout one write to the server.
	DialTimeout, WriteTimeout time.Duration
	// Logger gets the client's connection events; nil discards them.
	Logger *slog.Logger
	// HTTPClient, if set, makes the HTTPS calls (checkin, register3,
	// topics) in place of a client of its own built from TLS: a program
	// making many devices shares one, with its own dialer (ccsbench
	// spreads its devices over source addresses so).
	HTTPClient *http.Client
	// RateLimitRetries is how many times a call that ccsd refused for the
	// rate (429 with Retry-After) is tried again, after waiting as a phone
	// does. 0: DefaultRateLimitRetries; negative: none, the 429 is
	// returned at once as an *HTTPError (a load generator stops there).
	RateLimitRetries int
	// OnDisconnect, if set, is called (from Run's goroutine) with the
	// error of each connection attempt that failed and each session that
	// ended, before Run waits to try again: a program that needs the
	// server now (a command line tool) can give up at once instead.
	OnDisconnect func(err error)
}

func (c Config) withDefaults() Config {
	if c.Domain == "" {
		c.Domain = DefaultDomain
	}
	c.Keepalive = orDefault(c.Keepalive, DefaultKeepalive)
	c.PingTimeout = orDefault(c.PingTimeout, DefaultPingTimeout)
	c.MinBackoff = orDefault(c.MinBackoff, DefaultMinBackoff)
	c.MaxBackoff = max(orDefault(c.MaxBackoff, DefaultMaxBackoff), c.MinBackoff)
	c.DialTimeout = orDefault(c.DialTimeout, DefaultDialTimeout)
	c.WriteTimeout = orDefault(c.WriteTimeout, DefaultWriteTimeout)
	switch {
	case c.RateLimitRetries == 0:
		c.RateLimitRetries = DefaultRateLimitRetries
	case c.RateLimitRetries < 0:
		c.RateLimitRetries = 0
	}
	if c.DedupWindow <= 0 {
		c.DedupWindow = DefaultDedupWindow
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Handler == nil {
		c.Handler = HandlerFunc(func(context.Context, *Message) error { return nil })
	}
	return c
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// locate returns where the server is now.
func (c *Config) locate() (Addrs, error) {
	if c.Locate != nil {
		a, err := c.Locate()
		if err != nil {
			return Addrs{}, fmt.Errorf("device: locate the server: %w", err)
		}
		return a, nil
	}
	if c.Addrs.HTTP == "" && c.Addrs.Device == "" {
		return Addrs{}, errors.New("device: Config has no server address (Addrs or Locate)")
	}
	return c.Addrs, nil
}

// FromDataDir returns a Config for the ccsd serving the data directory dir
// on this machine: it trusts dir/cert.pem (the certificate ccsd made, or
// the one given to it with --tls-cert) and reads dir/run.json, which the
// server writes once it listens, for the addresses before each
// connection. The caller sets StateFile, Handler and the rest.
func FromDataDir(dir string) (Config, error) {
	pool, err := CertPool(filepath.Join(dir, "cert.pem"))
	if err != nil {
		return Config{}, err
	}
	return Config{
		TLS:    &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		Locate: func() (Addrs, error) { return ReadRunJSON(dir) },
	}, nil
}

// CertPool returns a pool holding the certificates of the PEM file path.
func CertPool(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("device: trust: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("device: trust: %s holds no PEM certificate", path)
	}
	return pool, nil
}

// ReadRunJSON reads the addresses of the server running on data directory
// dir from dir/run.json. A missing file means no server runs there (or it
// is still starting).
func ReadRunJSON(dir string) (Addrs, error) {
	path := filepath.Join(dir, "run.json")
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return Addrs{}, fmt.Errorf("no ccsd is running on %s (%s does not exist: start one with \"ccsd serve --data %s\" or \"make run\")", dir, path, dir)
	}
	if err != nil {
		return Addrs{}, err
	}
	var v struct {
		HTTPAddr   string `json:"http_addr"`
		DeviceAddr string `json:"device_addr"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return Addrs{}, fmt.Errorf("parse %s: %w", path, err)
	}
	if v.HTTPAddr == "" || v.DeviceAddr == "" {
		return Addrs{}, fmt.Errorf("%s names no http_addr or device_addr", path)
	}
	return Addrs{HTTP: v.HTTPAddr, Device: v.DeviceAddr}, nil
}
