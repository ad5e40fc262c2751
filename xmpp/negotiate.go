package xmpp

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"io"
	"strconv"
	"strings"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
)

var (
	// errHostUnknown ends negotiation when the stream `to` is not ours; the
	// stream error has already been written.
	errHostUnknown = errors.New("xmpp: stream addressed to an unknown host")
	// errAuthFailed ends negotiation after a SASL <failure/> was sent.
	errAuthFailed = errors.New("xmpp: authentication failed")
	// errThrottled fails SASL when the LoginLimiter refused the attempt; it
	// is answered with temporary-auth-failure (mellium sends nothing for an
	// error other than sasl.ErrAuthn).
	errThrottled = errors.New("xmpp: login throttled")
)

// negotiation is the per-connection state of stream negotiation: it builds
// the stream features, captures the identity at SASL and the JID at bind.
type negotiation struct {
	srv      *Server
	wire     *wireConn
	ctx      context.Context
	addr     string // remote host:port, for login throttling
	identity string
	jid      string
	authFail bool          // a SASL <failure/> was sent
	retry    time.Duration // set when the login was throttled: sent as text

	features []xmpp.StreamFeature
}

func newNegotiation(ctx context.Context, srv *Server, wire *wireConn, addr string) *negotiation {
	n := &negotiation{srv: srv, wire: wire, ctx: ctx, addr: addr}
	n.features = []xmpp.StreamFeature{n.saslFeature(), xmpp.BindCustom(n.bind), sessionFeature}
	return n
}

// run negotiates the stream with mellium: stream header, SASL PLAIN, stream
// restart, resource binding.
func (n *negotiation) run() (*xmpp.Session, error) {
	return xmpp.ReceiveSession(n.ctx, n.wire, xmpp.Secure, xmpp.NewNegotiator(n.config))
}

// config is mellium's per-stream callback. It is called once with a nil
// session when the negotiator is built and then after each stream header from
// the client, which is where the stream `to` is checked (mellium accepts any).
func (n *negotiation) config(s *xmpp.Session, _ *xmpp.StreamConfig) xmpp.StreamConfig {
	if s != nil {
		if to := s.LocalAddr(); !n.srv.acceptDomain(to.String()) {
			// The server header is already out; the stream error follows it.
			// mellium's features list (which it flushes even when a feature
			// fails to list) must not reach the wire after it.
			_, _ = n.wire.Write(renderStreamError("host-unknown", ""))
			n.wire.mute.Store(true)
			return xmpp.StreamConfig{Features: []xmpp.StreamFeature{hostUnknownFeature}}
		}
	}
	return xmpp.StreamConfig{Features: n.features}
}

// hostUnknownFeature fails feature listing so that negotiation stops.
var hostUnknownFeature = xmpp.StreamFeature{
	Name: xml.Name{Space: "urn:ccsd:host-unknown", Local: "host-unknown"},
	List: func(context.Context, xmlstream.TokenWriter, xml.StartElement) (bool, error) {
		return false, errHostUnknown
	},
}

// sessionFeature advertises the legacy session feature (RFC 3921), which
// Smack-style clients expect; its IQ is answered after negotiation.
var sessionFeature = xmpp.StreamFeature{
	Name:       xml.Name{Space: nsSession, Local: "session"},
	Necessary:  xmpp.Authn,
	Prohibited: xmpp.Ready,
	List: func(_ context.Context, e xmlstream.TokenWriter, start xml.StartElement) (bool, error) {
		if err := e.EncodeToken(start); err != nil {
			return false, err
		}
		return false, e.EncodeToken(start.End())
	},
}

// saslFeature is mellium's SASL server feature with our own PLAIN mechanism,
// wrapped so that every failure gets a <failure/> (mellium sends none when
// the initial response is not valid base64 or PLAIN cannot parse it).
func (n *negotiation) saslFeature() xmpp.StreamFeature {
	f := xmpp.SASLServer(func(*sasl.Negotiator) bool { return false }, n.plain())
	inner := f.Negotiate
	f.Negotiate = func(ctx context.Context, s *xmpp.Session, data interface{}) (xmpp.SessionState, io.ReadWriter, error) {
		before := n.wire.written.Load()
		mask, rw, err := inner(ctx, s, data)
		if err != nil {
			if n.wire.written.Load() == before && n.wire.readFailed() == nil {
				_, _ = n.wire.Write(n.saslFailure(errors.Is(err, errThrottled)))
			}
			if n.wire.readFailed() == nil {
				n.authFail = true
				err = errors.Join(errAuthFailed, err)
			}
		}
		return mask, rw, err
	}
	return f
}

// plain is SASL PLAIN (RFC 4616) for the server side. Unlike mellium's it
// accepts an <auth/> without an initial response (it answers with an empty
// challenge) and it calls the Authenticator itself, capturing the identity.
func (n *negotiation) plain() sasl.Mechanism {
	return sasl.Mechanism{
		Name: "PLAIN",
		Start: func(*sasl.Negotiator) (bool, []byte, interface{}, error) {
			return false, nil, nil, sasl.ErrInvalidState // server only
		},
		Next: func(_ *sasl.Negotiator, challenge []byte, data interface{}) (bool, []byte, interface{}, error) {
			if len(challenge) == 0 && data == nil {
				// No initial response: send an empty challenge, once.
				return true, nil, true, nil
			}
			parts := bytes.Split(challenge, []byte{0})
			if len(parts) != 3 {
				return false, nil, nil, sasl.ErrAuthn
			}
			if err := n.authenticate(string(parts[0]), string(parts[1]), string(parts[2])); err != nil {
				return false, nil, nil, err
			}
			return false, nil, nil, nil
		},
	}
}

// saslFailure renders the SASL <failure/> of a failed attempt: RFC 6120
// §6.5.11 temporary-auth-failure when throttled, with the time to wait as
// text, else not-authorized.
func (n *negotiation) saslFailure(throttled bool) []byte {
	if !throttled {
		return []byte(`<failure xmlns="urn:ietf:params:xml:ns:xmpp-sasl"><not-authorized/></failure>`)
	}
	secs := strconv.Itoa(int((n.retry + time.Second - 1) / time.Second))
	return []byte(`<failure xmlns="urn:ietf:params:xml:ns:xmpp-sasl"><temporary-auth-failure/>` +
		`<text xml:lang="en">too many failed logins; retry in ` + secs + `s</text></failure>`)
}

// authenticate checks the PLAIN credentials: strips an accepted "@domain"
// from the authcid, checks the authzid, asks the LoginLimiter (refused:
// errThrottled; else it may hold the attempt), then the Authenticator. It
// returns nil on success, sasl.ErrAuthn or errThrottled.
func (n *negotiation) authenticate(authzid, authcid, password string) error {
	lim := n.srv.cfg.Logins
	user, ok := n.srv.stripDomain(authcid)
	if ok && authzid != "" {
		z, zok := n.srv.stripDomain(authzid)
		ok = zok && z == user
	}
	retry, allowed := lim.Check(n.addr, user)
	if !allowed {
		n.srv.stats.loginsThrottled.Add(1)
		n.retry = retry
		n.srv.log.Info().Str("remote", n.addr).Str("user", truncate(authcid, 128)).Dur("retry", retry).Msg("xmpp: login throttled")
		return errThrottled
	}
	if err := wait(n.ctx, retry); err != nil {
		lim.Succeeded(n.addr, user) // not decided: give the reservation back
		return sasl.ErrAuthn
	}
	if ok && user != "" && n.verify(user, password) {
		n.srv.stats.loginsOK.Add(1)
		lim.Succeeded(n.addr, user)
		return nil
	}
	n.srv.stats.loginsFailed.Add(1)
	n.srv.log.Info().Str("remote", n.addr).Str("user", truncate(authcid, 128)).Msg("xmpp: login failed")
	if retry := lim.Failed(n.addr, user); retry > 0 {
		n.srv.stats.loginsThrottled.Add(1)
		n.retry = retry
		return errThrottled
	}
	return sasl.ErrAuthn
}

// verify asks the Authenticator and captures the identity.
func (n *negotiation) verify(user, password string) bool {
	log := n.srv.log.With().Str("remote", n.addr).Logger()
	id, err := n.srv.cfg.Auth.Authenticate(n.ctx, user, password)
	if err == nil && id != "" {
		if _, jerr := jid.New(id, n.srv.cfg.Domain, "r"); jerr == nil {
			n.identity = id
			return true
		}
		log.Error().Str("identity", id).Msg("xmpp: authenticator returned an identity that is not a JID localpart")
	} else if err == nil {
		log.Error().Str("user", user).Msg("xmpp: authenticator returned an empty identity")
	}
	return false
}

// bind assigns the full JID identity@Domain/random, whatever resource the
// client asked for.
func (n *negotiation) bind(jid.JID, string) (jid.JID, error) {
	j, err := jid.New(n.identity, n.srv.cfg.Domain, randomResource())
	if err != nil {
		return jid.JID{}, err
	}
	n.jid = j.String()
	return j, nil
}

// stripDomain removes an accepted "@domain" suffix from a SASL user name.
func (s *Server) stripDomain(user string) (string, bool) {
	i := strings.LastIndexByte(user, '@')
	if i < 0 {
		return user, true
	}
	if !s.isDomain(user[i+1:]) {
		return "", false
	}
	return user[:i], true
}

// acceptDomain checks a stream `to`; a missing `to` means our Domain.
func (s *Server) acceptDomain(to string) bool {
	return to == "" || s.isDomain(to)
}

func (s *Server) isDomain(d string) bool {
	if strings.EqualFold(d, s.cfg.Domain) {
		return true
	}
	for _, a := range s.cfg.Aliases {
		if strings.EqualFold(d, a) {
			return true
		}
	}
	return false
}

func randomUint64() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return binary.LittleEndian.Uint64(b[:])
}

// randomResource returns 16 upper-case hex digits.
func randomResource() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return strings.ToUpper(hex.EncodeToString(b[:]))
}
