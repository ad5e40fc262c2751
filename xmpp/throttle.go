package xmpp

import (
	"context"
	"time"
)

// LoginLimiter throttles failed logins; *limit.Logins implements it (see
// there for the budgets). The Server calls Check before it verifies SASL
// PLAIN credentials, with the peer's "host:port" and the SASL user (its
// accepted "@domain" stripped; empty when it names a foreign domain), then
// exactly one of Failed or Succeeded for a checked attempt.
type LoginLimiter interface {
	// Check refuses the attempt (ok false: answered
	// <failure><temporary-auth-failure/></failure>, retry is sent as text),
	// or lets it through after holding it for retry.
	Check(addr, identity string) (retry time.Duration, ok bool)
	// Failed records wrong credentials; a non-zero retry answers this wrong
	// attempt with temporary-auth-failure instead of not-authorized.
	Failed(addr, identity string) (retry time.Duration)
	// Succeeded records an attempt that was not a failure.
	Succeeded(addr, identity string)
}

// wait sleeps for d or until ctx is done.
func wait(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
