package groups

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// LoginLimiter throttles failed API-key checks; *limit.Logins implements
// it, and ccsd shares one instance with the XMPP ports and /gcm/send. The
// identity is the project_id (the sender id). Check comes before the key is
// verified (refused: 429; else hold the request for retry), then exactly one
// of Failed (a non-zero retry: answer this wrong key 429 too) or Succeeded.
type LoginLimiter interface {
	Check(addr, identity string) (retry time.Duration, ok bool)
	Failed(addr, identity string) (retry time.Duration)
	Succeeded(addr, identity string)
}

// throttledError answers 429 with Retry-After.
type throttledError struct{ retry time.Duration }

func (e *throttledError) Error() string {
	return fmt.Sprintf("groups: too many failed authentications; retry after %ds", e.seconds())
}

// seconds is the Retry-After value: whole seconds, at least 1.
func (e *throttledError) seconds() int { return max(int((e.retry+time.Second-1)/time.Second), 1) }

// setRetryAfter adds Retry-After when err is a throttledError.
func setRetryAfter(w http.ResponseWriter, err error) {
	var te *throttledError
	if errors.As(err, &te) {
		w.Header().Set("Retry-After", strconv.Itoa(te.seconds()))
	}
}

// noLimit is the LoginLimiter of a handler built without one.
type noLimit struct{}

func (noLimit) Check(string, string) (time.Duration, bool) { return 0, true }
func (noLimit) Failed(string, string) time.Duration        { return 0 }
func (noLimit) Succeeded(string, string)                   {}
