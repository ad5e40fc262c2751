package limit

import "time"

// Defaults of NewLogins' zero arguments.
const (
	// DefaultLoginFailuresPerAddr is the failed logins a minute (and the
	// burst) one source address may spend before its attempts are refused.
	DefaultLoginFailuresPerAddr = 30
	// DefaultLoginFailuresPerIdentity is the failed logins a minute (and the
	// burst) of one identity before its attempts are held (MaxLoginHold).
	DefaultLoginFailuresPerIdentity = 10
	// MaxLoginHold is the longest an attempt is held for its identity's
	// failures: an attacker guessing an identity's key slows its owner's
	// logins by at most this much, never locks it out.
	MaxLoginHold = time.Second
)

// Logins throttles failed logins (SASL PLAIN on the XMPP ports, API keys on
// the HTTP endpoints) with two budgets of failures, shared by every
// connection and request, so parallel connections do not multiply them:
//
//   - per source address (AddrKey): an attempt from an address whose budget
//     is spent is refused before the credentials are even checked, so an
//     address that guesses a lot stops costing verifications;
//   - per identity (SASL user, project_id): when an identity's budget is
//     spent, each further attempt at it, from anywhere, is held for at most
//     MaxLoginHold, and a WRONG one is then answered as throttled. A correct
//     one succeeds: failures others make at an identity never refuse its
//     owner.
//
// A caller does: Check; if refused, answer "throttled, retry after"; else
// wait what Check returned, verify, then Failed or Succeeded. Check reserves
// the address's failure up front, so N parallel attempts cannot all pass
// before the first failure is counted; Succeeded gives it back. All methods
// are safe for concurrent use and a nil *Logins allows everything.
type Logins struct {
	addr *Rate
	id   *Rate
}

// NewLogins returns a limiter of perAddr failed logins a minute per source
// address and perIdentity a minute per identity (0 takes the defaults above;
// a negative value disables that budget). Both tables are bounded.
func NewLogins(perAddr, perIdentity int) *Logins {
	if perAddr == 0 {
		perAddr = DefaultLoginFailuresPerAddr
	}
	if perIdentity == 0 {
		perIdentity = DefaultLoginFailuresPerIdentity
	}
	return &Logins{addr: PerMinute(perAddr, 0), id: PerMinute(perIdentity, 0)}
}

// Check decides a login attempt from addr ("host:port" or an IP) at identity
// (may be empty when the request names none) before its credentials are
// verified. ok false: refuse it now, retry is when the address may try again.
// ok true: retry is how long to hold the attempt before verifying (0 unless
// the identity's budget is spent; at most MaxLoginHold); one of Failed or
// Succeeded must follow.
func (l *Logins) Check(addr, identity string) (retry time.Duration, ok bool) {
	if l == nil {
		return 0, true
	}
	if ok, retry := l.addr.Reserve(AddrKey(addr)); !ok {
		return retry, false
	}
	if identity == "" {
		return 0, true
	}
	return min(l.id.peek(identity), MaxLoginHold), true
}

// Failed records that a checked attempt had wrong credentials. It returns 0
// when the identity had budget left (answer "not authorized"), else how long
// until it has again: the wrong attempt is then answered as throttled.
func (l *Logins) Failed(addr, identity string) (retry time.Duration) {
	if l == nil || identity == "" {
		return 0
	}
	if ok, retry := l.id.Reserve(identity); !ok {
		return retry
	}
	return 0
}

// Succeeded records that a checked attempt was not a failure (right
// credentials, or they could not be checked, e.g. the store was closing):
// the failure Check reserved for the address is given back. Nothing more is
// forgiven, so logging in with one's own key does not buy guesses at others.
func (l *Logins) Succeeded(addr, identity string) {
	if l == nil {
		return
	}
	l.addr.refund(AddrKey(addr))
}

// Scoped returns l seen through an identity namespace: identities are
// prefixed with scope, so that e.g. device ids and sender ids that happen to
// be equal do not share a budget. Addresses stay shared.
func (l *Logins) Scoped(scope string) *ScopedLogins { return &ScopedLogins{l: l, scope: scope} }

// ScopedLogins is a Logins with prefixed identities; see Logins.Scoped.
type ScopedLogins struct {
	l     *Logins
	scope string
}

func (s *ScopedLogins) key(identity string) string {
	if identity == "" {
		return ""
	}
	return s.scope + identity
}

// Check is Logins.Check in the scope.
func (s *ScopedLogins) Check(addr, identity string) (time.Duration, bool) {
	return s.l.Check(addr, s.key(identity))
}

// Failed is Logins.Failed in the scope.
func (s *ScopedLogins) Failed(addr, identity string) time.Duration {
	return s.l.Failed(addr, s.key(identity))
}

// Succeeded is Logins.Succeeded in the scope.
func (s *ScopedLogins) Succeeded(addr, identity string) { s.l.Succeeded(addr, s.key(identity)) }

// peek returns how long until key has an event to spend (0: it has one now),
// spending nothing.
func (r *Rate) peek(key string) time.Duration {
	if r.Disabled() {
		return 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	b, known := r.m[key]
	if !known {
		return 0
	}
	if t := r.refill(b, r.now()); t < 1 {
		return time.Duration((1 - t) * float64(r.every))
	}
	return 0
}

// refund gives key back one event spent by Reserve (up to the burst).
func (r *Rate) refund(key string) {
	if r.Disabled() {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	b, known := r.m[key]
	if !known {
		return // forgotten since: it starts full anyway
	}
	now := r.now()
	b.tokens = min(r.refill(b, now)+1, r.burst)
	b.last = now
	r.m[key] = b
}
