package httpapi

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ccsd/ccsd/auth"
)

// LoginLimiter throttles failed API-key checks; *limit.Logins implements
// it, and ccsd shares one instance with the XMPP ports so that guesses count
// against the same budgets wherever they arrive. Check comes before the key
// is verified (refused: answer 429; else hold the request for retry), then
// exactly one of Failed (a non-zero retry: answer this wrong key 429 too) or
// Succeeded.
type LoginLimiter interface {
	Check(addr, identity string) (retry time.Duration, ok bool)
	Failed(addr, identity string) (retry time.Duration)
	Succeeded(addr, identity string)
}

// authenticate checks the request's API key under the failed-login budget
// and returns its sender; when it returns false the answer is written. The
// legacy send names no sender, so only the client address's budget applies.
func (h *SendHandler) authenticate(w http.ResponseWriter, r *http.Request) (string, bool) {
	key, ok := strings.CutPrefix(r.Header.Get("Authorization"), "key=")
	if !ok || key == "" {
		writeError(w, http.StatusUnauthorized, "missing Authorization: key=API_KEY header")
		return "", false
	}
	lim, addr := h.logins, r.RemoteAddr
	if lim == nil {
		lim = noLimit{}
	}
	hold, ok := lim.Check(addr, "")
	if !ok {
		writeThrottled(w, hold)
		return "", false
	}
	if hold > 0 {
		t := time.NewTimer(hold)
		select {
		case <-t.C:
		case <-r.Context().Done():
		}
		t.Stop()
	}
	sender, err := h.auth.AuthenticateKey(r.Context(), "", strings.TrimSpace(key))
	switch {
	case errors.Is(err, auth.ErrBadCredentials):
		if retry := lim.Failed(addr, ""); retry > 0 {
			writeThrottled(w, retry)
			return "", false
		}
		writeError(w, http.StatusUnauthorized, "the API key is not valid")
		return "", false
	case err != nil:
		// The key could not be checked (store closed, request cancelled):
		// retryable, and not the client's fault, so not a failure either.
		lim.Succeeded(addr, "")
		h.log.Error().Err(err).Msg("authenticate API key")
		w.Header().Set("Retry-After", "10")
		writeError(w, http.StatusServiceUnavailable, "service unavailable, retry later")
		return "", false
	}
	lim.Succeeded(addr, "")
	return sender, true
}

// writeThrottled answers 429 with Retry-After in whole seconds (at least 1).
func writeThrottled(w http.ResponseWriter, retry time.Duration) {
	secs := max(int((retry+time.Second-1)/time.Second), 1)
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	writeError(w, http.StatusTooManyRequests, "too many failed authentications from this address; retry after "+strconv.Itoa(secs)+"s")
}

// noLimit is the LoginLimiter of a handler built without one.
type noLimit struct{}

func (noLimit) Check(string, string) (time.Duration, bool) { return 0, true }
func (noLimit) Failed(string, string) time.Duration        { return 0 }
func (noLimit) Succeeded(string, string)                   {}
