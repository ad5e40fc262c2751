package xmpp

import (
	"context"
	"crypto/tls"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"mellium.im/xmpp/stream"

	"github.com/ccsd/ccsd/internal/limit"
)

// Defaults for the zero values of Config.
const (
	DefaultMaxStanzaSize      = 64 << 10
	DefaultIdleTimeout        = 10 * time.Minute
	DefaultWriteTimeout       = 30 * time.Second
	DefaultNegotiationTimeout = 20 * time.Second
	DefaultHandshakeTimeout   = 5 * time.Second
	DefaultMaxUnauthPerAddr   = 32
	DefaultSendQueue          = 1024
	DefaultSendQueueBytes     = 1 << 20
)

// aLongTimeAgo is a deadline in the past, to kick blocked reads.
var aLongTimeAgo = time.Unix(1, 0)

// closeWait is how long a closing connection waits for the peer's
// </stream:stream> before the socket is closed.
const closeWait = 2 * time.Second

// Authenticator checks SASL PLAIN credentials.
type Authenticator interface {
	// Authenticate is called with the SASL authcid, any accepted "@domain"
	// suffix already stripped (clients send "123" or "123@gcm.googleapis.com"),
	// and the password. The authzid has been checked: empty or naming the same
	// user. It returns the identity of the connection (it becomes the localpart
	// of the bound JID). A non-nil error answers SASL
	// <failure><not-authorized/></failure> and the connection closes.
	Authenticate(ctx context.Context, user, password string) (identity string, err error)
}

// AuthenticatorFunc adapts a function to the Authenticator interface.
type AuthenticatorFunc func(ctx context.Context, user, password string) (string, error)

// Authenticate calls f(ctx, user, password).
func (f AuthenticatorFunc) Authenticate(ctx context.Context, user, password string) (string, error) {
	return f(ctx, user, password)
}

// Stream receives what arrives on one negotiated connection.
type Stream interface {
	// Message is called once per <message> carrying a
	// <gcm xmlns="google:mobile:data"> child (any prefix; namespace and local
	// name are matched). stanzaID is the message's id attribute; payload is
	// the child's text, XML-unescaped (CDATA accepted), and belongs to the
	// callee. Message is called sequentially on the connection's reader
	// goroutine, in arrival order: while it runs, nothing more is read from
	// this connection. Messages of type "error" are not delivered.
	Message(stanzaID string, payload []byte)
	// Closed is called exactly once, after the reader stopped. From then on
	// Send returns ErrClosed.
	Closed()
}

// Handler opens the Stream of a connection once it is authenticated and bound.
type Handler interface {
	// Open is called on the connection's goroutine before anything is read
	// after negotiation; Send may already be used. An error closes the
	// connection with a stream error: the condition of a *StreamError in its
	// chain, else that of an error with a StreamCondition() string method
	// (so packages that must not import this one can choose it), else
	// internal-server-error. Closed is not called when Open fails.
	Open(c *Conn) (Stream, error)
}

// HandlerFunc adapts a function to the Handler interface.
type HandlerFunc func(c *Conn) (Stream, error)

// Open calls f(c).
func (f HandlerFunc) Open(c *Conn) (Stream, error) { return f(c) }

// StreamError is an error a Handler can return from Open to choose the
// stream error condition (e.g. "policy-violation").
type StreamError struct {
	Condition string // RFC 6120 §4.9.3 condition, e.g. "policy-violation"
	Text      string // optional human-readable text
}

// StreamCondition returns e.Condition.
func (e *StreamError) StreamCondition() string { return e.Condition }

// Error implements error.
func (e *StreamError) Error() string {
	if e.Text == "" {
		return "xmpp: stream error " + e.Condition
	}
	return "xmpp: stream error " + e.Condition + ": " + e.Text
}

// Config configures a Server. Zero values take the defaults named.
type Config struct {
	// Domain is the server's domain, e.g. "gcm.googleapis.com": the accepted
	// stream `to`, the accepted SASL user domain and the domain of bound JIDs.
	// Default "gcm.googleapis.com".
	Domain string
	// Aliases are other accepted domains, e.g. "fcm.googleapis.com".
	Aliases []string
	// TLS is the configuration of the direct-TLS handshake. Required.
	TLS *tls.Config
	// Auth checks credentials. Required.
	Auth Authenticator
	// Handler opens the Stream of each connection. Required.
	Handler Handler
	// Logger receives structured logs (connection id, remote address,
	// identity).
	Logger zerolog.Logger
	// MaxConnsPerIdentity bounds simultaneous connections per identity; past
	// it a new connection gets the stream error policy-violation. 0 means
	// unlimited; CCS allowed 1000 per sender.
	MaxConnsPerIdentity int
	// MaxStanzaSize bounds one top-level element in bytes, enforced while
	// reading; a bigger one ends the connection with policy-violation.
	// Default 64 KiB.
	MaxStanzaSize int
	// IdleTimeout closes a connection that sent no byte at all (whitespace
	// keepalives count) for that long, with connection-timeout. Default 10m.
	IdleTimeout time.Duration
	// WriteTimeout bounds each write to the peer. Default 30s.
	WriteTimeout time.Duration
	// HandshakeTimeout bounds the TLS handshake, from accept: a socket that
	// sends no ClientHello is closed after it. Default 5s.
	HandshakeTimeout time.Duration
	// NegotiationTimeout bounds what follows the TLS handshake up to a bound
	// session: stream headers, SASL and bind. Default 20s.
	NegotiationTimeout time.Duration
	// MaxUnauthPerAddr bounds the connections of one source address
	// (limit.AddrKey: an IPv4 address or an IPv6 /64) that are not yet
	// negotiated (TLS, SASL, bind) on this Server. A connection past it is
	// closed at once, before TLS: nothing can be said to a peer before the
	// handshake, and a handshake costs what the limit saves. Default 32;
	// negative means unlimited.
	MaxUnauthPerAddr int
	// Conns, when set, is a process-wide count of open connections (key
	// limit.GlobalKey) shared with the other listeners, so that together
	// they stay below the file-descriptor limit. A connection accepted past
	// it is closed at once (the backlog keeps draining, the client sees a
	// prompt close instead of a hang). nil: no global limit.
	Conns *limit.Count
	// Logins throttles failed logins; share one with the other servers and
	// the HTTP endpoints taking API keys. nil: a limit.NewLogins(0, 0) of
	// this Server alone.
	Logins LoginLimiter
	// SendQueue is the number of stanzas a connection buffers for its
	// writer; a Send finding it full closes the connection (slow consumer).
	// Default 1024.
	SendQueue int
	// SendQueueBytes bounds the bytes a connection buffers for its writer
	// (stanzas and IQ answers together; one stanza is always taken into an
	// empty queue): a stanza error echoes up to a whole stanza, so a peer
	// that sends bad stanzas and never reads would otherwise make the
	// server hold SendQueue of them. Past it the connection is closed like
	// for SendQueue (slow consumer). Default 1 MiB.
	SendQueueBytes int
	// DeliveryFrom, when set, addresses every message of TypeNormal this
	// server sends: from=DeliveryFrom and to=the connection's bound JID.
	// CCS wrote upstream messages and receipts to app servers that way,
	// from="devices@gcm.googleapis.com" (spec §5.1). "" writes neither.
	DeliveryFrom string
}

// Server accepts XMPP client connections over direct TLS.
type Server struct {
	cfg      Config
	log      zerolog.Logger
	unauth   *limit.Count // per-address connections not yet negotiated
	warn     *limit.Rate  // at most one global-limit warning a minute
	idPrefix string

	ctx    context.Context // canceled by Close: aborts negotiations
	cancel context.CancelFunc

	nextID atomic.Uint64
	stats  serverStats

	mu          sync.Mutex
	closed      bool
	listeners   map[net.Listener]struct{}
	conns       map[*Conn]struct{}
	perIdentity map[string]int
	wg          sync.WaitGroup
}

// NewServer returns a Server for cfg. It panics if cfg.TLS, cfg.Auth or
// cfg.Handler is nil.
func NewServer(cfg Config) *Server {
	if cfg.TLS == nil || cfg.Auth == nil || cfg.Handler == nil {
		panic("xmpp: NewServer needs Config.TLS, Config.Auth and Config.Handler")
	}
	if cfg.Domain == "" {
		cfg.Domain = "gcm.googleapis.com"
	}
	if cfg.MaxStanzaSize <= 0 {
		cfg.MaxStanzaSize = DefaultMaxStanzaSize
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.NegotiationTimeout <= 0 {
		cfg.NegotiationTimeout = DefaultNegotiationTimeout
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if cfg.MaxUnauthPerAddr == 0 {
		cfg.MaxUnauthPerAddr = DefaultMaxUnauthPerAddr
	}
	if cfg.Logins == nil {
		cfg.Logins = limit.NewLogins(0, 0)
	}
	if cfg.SendQueue <= 0 {
		cfg.SendQueue = DefaultSendQueue
	}
	if cfg.SendQueueBytes <= 0 {
		cfg.SendQueueBytes = DefaultSendQueueBytes
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{
		cfg:         cfg,
		log:         cfg.Logger,
		unauth:      limit.NewCount(cfg.MaxUnauthPerAddr),
		warn:        limit.NewRate(1, time.Minute, 4),
		idPrefix:    strconv.FormatUint(randomUint64()&0xffffff, 36),
		ctx:         ctx,
		cancel:      cancel,
		listeners:   make(map[net.Listener]struct{}),
		conns:       make(map[*Conn]struct{}),
		perIdentity: make(map[string]int),
	}
}

// Serve accepts connections on l, a plain TCP listener: each connection does
// a TLS handshake from its first byte (no STARTTLS), then XMPP negotiation.
// It returns nil when l is closed (by Close or by the caller), or the
// accept error that stopped it.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = l.Close()
		return nil
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
	}()

	var backoff time.Duration
	for {
		raw, err := l.Accept()
		if err != nil {
			if s.isClosed() || errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				// Transient (e.g. EMFILE): back off like net/http.
				if backoff == 0 {
					backoff = 5 * time.Millisecond
				} else if backoff *= 2; backoff > time.Second {
					backoff = time.Second
				}
				s.log.Warn().Err(err).Dur("retry_in", backoff).Msg("xmpp: accept failed")
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		key, ok := s.admit(raw)
		if !ok {
			continue
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			_ = raw.Close()
			s.unadmit(key)
			return nil
		}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.handle(raw, key)
	}
}

// admit takes raw's slots in the global and the per-address counts, or
// closes it at once (before TLS: there is nothing to say yet, and refusing
// must cost less than what it protects). It returns raw's address key.
// Hitting the global limit is logged as a warning at most once a minute.
func (s *Server) admit(raw net.Conn) (key string, ok bool) {
	key = limit.NetAddrKey(raw.RemoteAddr())
	if !s.cfg.Conns.Acquire(limit.GlobalKey) {
		s.stats.refusedGlobal.Add(1)
		_ = raw.Close()
		if s.warn.Allow("global") {
			s.log.Warn().Str("remote", raw.RemoteAddr().String()).
				Msg("xmpp: global connection limit reached; new connections are closed at accept")
		}
		return key, false
	}
	if !s.unauth.Acquire(key) {
		s.stats.refusedPerAddr.Add(1)
		s.cfg.Conns.Release(limit.GlobalKey)
		_ = raw.Close()
		s.log.Debug().Str("remote", raw.RemoteAddr().String()).
			Msg("xmpp: too many unauthenticated connections from this address; closed at accept")
		return key, false
	}
	return key, true
}

// unadmit gives back the slots admit took.
func (s *Server) unadmit(key string) {
	s.unauth.Release(key)
	s.cfg.Conns.Release(limit.GlobalKey)
}

// Close stops accepting, closes every connection with the stream error
// system-shutdown (queued stanzas are flushed first) and waits for their
// goroutines. Connections still negotiating are aborted.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.wg.Wait()
		return nil
	}
	s.closed = true
	var errs []error
	for l := range s.listeners {
		if err := l.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	conns := make([]*Conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()

	s.cancel()
	for _, c := range conns {
		c.Close(CondSystemShutdown)
	}
	s.wg.Wait()
	return errors.Join(errs...)
}

// ConnCount returns the number of negotiated connections (authenticated,
// bound, accepted by the Handler or being opened).
func (s *Server) ConnCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// handle runs one connection from accept to close. Until the TLS handshake
// is done it holds only raw, the TLS state and this goroutine: no logger,
// context or buffers are made for a peer that never says hello. A
// negotiated session then runs on a goroutine of its own (serve): this
// one's stack grew for the TLS handshake and mellium's negotiation, and a
// long-lived idle session should keep only the stack its read needs.
func (s *Server) handle(raw net.Conn, key string) {
	c := s.establish(raw, key)
	if c == nil {
		_ = raw.Close()
		s.cfg.Conns.Release(limit.GlobalKey) // the slot goes only after the descriptor
		s.wg.Done()
		return
	}
	go s.serve(raw, c)
}

// serve runs a negotiated connection to its end and gives back what
// accept took.
func (s *Server) serve(raw net.Conn, c *Conn) {
	defer s.wg.Done()
	defer s.cfg.Conns.Release(limit.GlobalKey)
	defer raw.Close() // normally closed already; the slot goes only after the descriptor
	c.run()
}

// establish runs the TLS handshake and negotiation; it returns the
// connection, or nil once a failure has been answered and the connection
// closed. The address's unauthenticated slot is given back either way.
func (s *Server) establish(raw net.Conn, key string) *Conn {
	defer s.unauth.Release(key)
	tc, err := s.handshake(raw)
	id := s.nextID.Add(1)
	log := s.log.With().Uint64("conn", id).Str("remote", raw.RemoteAddr().String()).Logger()
	if errors.Is(err, errPlaintext) {
		log.Info().Msg("xmpp: plain-text client on a direct-TLS port; told to start TLS first")
		return nil
	}
	if err != nil {
		log.Debug().Err(err).Msg("xmpp: tls handshake failed")
		return nil
	}
	wire := newWireConn(tc, s.cfg.MaxStanzaSize)
	n, err := s.negotiate(raw, wire, log)
	if err != nil {
		lingerClose(wire)
		return nil
	}
	log = log.With().Str("identity", n.identity).Str("jid", n.jid).Logger()
	return newConn(s, id, log, wire, n.identity, n.jid, raw.RemoteAddr())
}

// negotiate runs negotiation under NegotiationTimeout and writes the stream
// error of a failure. Its context, timer and mellium's session end with
// it: a session holds none of them while it lives.
func (s *Server) negotiate(raw net.Conn, wire *wireConn, log zerolog.Logger) (*negotiation, error) {
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.NegotiationTimeout)
	defer cancel()
	_ = raw.SetDeadline(time.Now().Add(s.cfg.NegotiationTimeout))
	n := newNegotiation(ctx, s, wire, raw.RemoteAddr().String())
	// The deadline set above bounds negotiation; a canceled context (timeout
	// or Server.Close) kicks a blocked read. mellium cannot touch deadlines:
	// wireConn's deadline setters are no-ops.
	kicked := make(chan struct{})
	stop := context.AfterFunc(ctx, func() { _ = raw.SetDeadline(aLongTimeAgo); close(kicked) })
	_, err := n.run()
	if !stop() {
		// The kick has started: wait for it to end, or its past deadline
		// could land after the write deadline of the stream error below
		// and cut that write in the middle of a TLS record.
		<-kicked
		if err == nil {
			err = ctx.Err() // kicked just as negotiation ended
		}
	}
	if err != nil {
		s.negotiationFailed(ctx, log, wire, n, err)
		return nil, err
	}
	n.ctx = nil
	return n, nil
}

// handshake runs the server side of TLS within HandshakeTimeout. Server.Close
// aborts it through the deadline; a plain Handshake is used rather than
// HandshakeContext, which costs a goroutine per connection.
func (s *Server) handshake(raw net.Conn) (*tls.Conn, error) {
	_ = raw.SetDeadline(time.Now().Add(s.cfg.HandshakeTimeout))
	kicked := make(chan struct{})
	stop := context.AfterFunc(s.ctx, func() { _ = raw.SetDeadline(aLongTimeAgo); close(kicked) })
	defer func() {
		if !stop() {
			<-kicked // let the kick finish before the caller sets deadlines again
		}
	}()
	c, err := sniffTLS(raw)
	if err != nil {
		return nil, fmt.Errorf("xmpp: before tls: %w", err)
	}
	tc := tls.Server(c, s.cfg.TLS)
	if err := tc.Handshake(); err != nil {
		return nil, fmt.Errorf("xmpp: tls handshake: %w", err)
	}
	if s.ctx.Err() != nil {
		return nil, fmt.Errorf("xmpp: tls handshake: %w", s.ctx.Err())
	}
	return tc, nil
}

// negotiationFailed writes the stream error that ends a failed negotiation.
func (s *Server) negotiationFailed(ctx context.Context, log zerolog.Logger, wire *wireConn, n *negotiation, err error) {
	rerr := wire.readFailed()
	cerr := ctx.Err()
	var cond string
	var se stream.Error
	var syn *xml.SyntaxError
	var ne net.Error
	switch {
	case errors.Is(err, errHostUnknown):
		log.Info().Str("reason", "host-unknown").Msg("xmpp: negotiation failed")
		return // already written
	case n.authFail:
		cond = "" // <failure/> was sent: just close the stream
	case errors.Is(rerr, errStanzaTooBig):
		cond = "policy-violation"
	case errors.Is(cerr, context.Canceled) && s.isClosed():
		cond = "system-shutdown"
	case cerr != nil || (errors.As(rerr, &ne) && ne.Timeout()):
		cond = "connection-timeout"
	case rerr != nil:
		log.Debug().Err(err).Msg("xmpp: negotiation failed: peer gone")
		return // peer gone: nothing to say
	case errors.As(err, &se):
		cond = se.Err
	case errors.As(err, &syn):
		cond = "not-well-formed"
	default:
		cond = "undefined-condition"
	}
	if !n.authFail { // a failed login was logged, once and clearly, where it failed
		log.Info().Err(err).Str("reason", cond).Msg("xmpp: negotiation failed")
	}
	var b []byte
	if wire.written.Load() == 0 {
		b = renderStreamHeader(s.cfg.Domain)
	}
	if cond == "" {
		b = append(b, `</stream:stream>`...)
	} else {
		b = append(b, renderStreamError(cond, "")...)
	}
	_ = wire.Conn.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = wire.Write(b)
	wire.endBuffering()
}

// lingerClose closes the connection without losing what was just written:
// TLS close_notify, TCP half-close, then the peer's remaining bytes are
// drained for a short while (closing with unread data would send a reset that
// can destroy our last bytes in flight).
func lingerClose(w *wireConn) {
	raw := w.netConn()
	_ = w.Conn.SetWriteDeadline(time.Now().Add(time.Second))
	w.endBuffering()
	_ = w.Conn.CloseWrite()
	if tcp, ok := raw.(interface{ CloseWrite() error }); ok {
		_ = tcp.CloseWrite()
		_ = raw.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		_, _ = io.CopyN(io.Discard, raw, 64<<10)
	}
	_ = raw.Close()
}

// register admits a negotiated connection: the server must be open and the
// identity under its connection limit.
func (s *Server) register(c *Conn) (cond, text string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return "system-shutdown", ""
	}
	if m := s.cfg.MaxConnsPerIdentity; m > 0 && s.perIdentity[c.identity] >= m {
		return "policy-violation", "too many connections for this identity"
	}
	s.perIdentity[c.identity]++
	s.conns[c] = struct{}{}
	return "", ""
}

func (s *Server) unregister(c *Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.conns[c]; !ok {
		return
	}
	delete(s.conns, c)
	if n := s.perIdentity[c.identity] - 1; n > 0 {
		s.perIdentity[c.identity] = n
	} else {
		delete(s.perIdentity, c.identity)
	}
}
