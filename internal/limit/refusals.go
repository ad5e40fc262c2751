package limit

import (
	"sync/atomic"
	"time"
)

// LoginLimiter is what *Logins and *ScopedLogins do, as the XMPP servers
// and the HTTP endpoints use them.
type LoginLimiter interface {
	Check(addr, identity string) (retry time.Duration, ok bool)
	Failed(addr, identity string) (retry time.Duration)
	Succeeded(addr, identity string)
}

// LoginRefusals counts the login attempts refused by the limiters it
// wraps: a Check that refused, or a Failed that answered the wrong attempt
// as throttled. One LoginRefusals wraps every port's limiter, so that its
// count is the failed-login budget's refusals wherever they happen. The
// zero value is ready to use.
type LoginRefusals struct{ n atomic.Uint64 }

// Wrap returns l counting its refusals in r.
func (r *LoginRefusals) Wrap(l LoginLimiter) LoginLimiter { return countedLogins{l: l, r: r} }

// Load returns the number of refusals so far.
func (r *LoginRefusals) Load() uint64 { return r.n.Load() }

type countedLogins struct {
	l LoginLimiter
	r *LoginRefusals
}

func (c countedLogins) Check(addr, identity string) (time.Duration, bool) {
	retry, ok := c.l.Check(addr, identity)
	if !ok {
		c.r.n.Add(1)
	}
	return retry, ok
}

func (c countedLogins) Failed(addr, identity string) time.Duration {
	retry := c.l.Failed(addr, identity)
	if retry > 0 {
		c.r.n.Add(1)
	}
	return retry
}

func (c countedLogins) Succeeded(addr, identity string) { c.l.Succeeded(addr, identity) }
