package httpapi

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/ccsd/ccsd/auth"
)

// LoginLimiter throttles failed API-key checks; *limit.Logins implements
// it, and ccsd shares one instance with the XMPP ports so that guesses count
// against the same budgets wherever they arrive. Check comes before the key
// is verified (refused: answer 429; else hold the request for retry), then
// exactly one of Failed (a non-zero retry: answer this wrong key 429 too) or
// Succeeded. The identity is the project_id, or "" where a request names
// none (the legacy send): then only the address's budget applies.
type LoginLimiter interface {
	Check(addr, identity string) (retry time.Duration, ok bool)
	Failed(addr, identity string) (retry time.Duration)
	Succeeded(addr, identity string)
}

// KeyAuthenticator finds the sender of an API key; *auth.Senders
// implements it. senderID may be empty (the legacy send has none); when it
// is not, the key must be that sender's. A wrong key is an error wrapping
// auth.ErrBadCredentials; any other error means the key could not be
// checked.
type KeyAuthenticator interface {
	AuthenticateKey(ctx context.Context, senderID, apiKey string) (string, error)
}

// BearerAuthenticator finds the sender of "Authorization: Bearer TOKEN":
// an OAuth2 access token from POST /token or a service account's
// self-signed JWT; *auth.ServiceAccounts implements it. A refused token is
// an error wrapping auth.ErrBadCredentials; any other error means it could
// not be checked.
type BearerAuthenticator interface {
	AuthenticateBearer(ctx context.Context, token string) (string, error)
}

// keyChecker is the one API-key check of the app-server endpoints
// (/gcm/send, /gcm/notification): the Authorization header, the
// failed-login budget and the 401, 429 and 503 answers.
type keyChecker struct {
	auth   KeyAuthenticator
	bearer BearerAuthenticator // nil: Bearer tokens are refused
	logins LoginLimiter
	log    zerolog.Logger
}

// newKeyChecker returns a keyChecker; logins nil means no throttling.
func newKeyChecker(a KeyAuthenticator, logins LoginLimiter, log zerolog.Logger) keyChecker {
	if logins == nil {
		logins = noLimit{}
	}
	return keyChecker{auth: a, logins: logins, log: log}
}

// parseAPIKey reads "Authorization: key=API_KEY". The scheme is
// case-insensitive and white space around it, the "=" and the key is
// ignored, as GCM clients wrote it in every form; ok is false for another
// scheme or an empty key.
func parseAPIKey(header string) (key string, ok bool) {
	scheme, key, ok := strings.Cut(header, "=")
	key = strings.TrimSpace(key)
	if !ok || !strings.EqualFold(strings.TrimSpace(scheme), "key") || key == "" {
		return "", false
	}
	return key, true
}

// parseBearer reads "Authorization: Bearer TOKEN" (the scheme in any
// case); ok is false for another scheme or an empty token.
func parseBearer(header string) (token string, ok bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(header), " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", false
	}
	return token, true
}

// bearerResult is the outcome of checkBearer, for the caller to answer in
// its API's own terms.
type bearerResult int

const (
	bearerOK          bearerResult = iota
	bearerBad                      // 401
	bearerThrottled                // 429 with retry
	bearerUnavailable              // 503: the token could not be checked
)

// checkBearer verifies a Bearer token under the failed-login budget of the
// client's address (the same as for API keys: a token guesser spends it
// as a key guesser does).
func (k *keyChecker) checkBearer(r *http.Request, token string) (string, bearerResult, time.Duration) {
	if k.bearer == nil {
		return "", bearerBad, 0
	}
	addr := r.RemoteAddr
	hold, ok := k.logins.Check(addr, "")
	if !ok {
		return "", bearerThrottled, hold
	}
	wait(r.Context(), hold)
	sender, err := k.bearer.AuthenticateBearer(r.Context(), token)
	switch {
	case errors.Is(err, auth.ErrBadCredentials):
		if retry := k.logins.Failed(addr, ""); retry > 0 {
			return "", bearerThrottled, retry
		}
		return "", bearerBad, 0
	case err != nil:
		k.logins.Succeeded(addr, "")
		k.log.Error().Err(err).Msg("authenticate bearer token")
		return "", bearerUnavailable, 0
	}
	k.logins.Succeeded(addr, "")
	return sender, bearerOK, 0
}

// authenticateBearer is checkBearer answered with the {"error": ...}
// bodies of keyChecker.authenticate.
func (k *keyChecker) authenticateBearer(w http.ResponseWriter, r *http.Request, token string) (string, bool) {
	sender, res, retry := k.checkBearer(r, token)
	switch res {
	case bearerBad:
		writeError(w, http.StatusUnauthorized, "the Bearer token is not valid: get one from POST /token with a service-account JWT")
	case bearerThrottled:
		writeThrottled(w, "", retry)
	case bearerUnavailable:
		writeUnavailable(w)
	}
	return sender, res == bearerOK
}

// authenticate checks the request's API key and returns its sender; when
// it returns false the answer is written. withProject requires the
// project_id header (the device-group API): the key must be that project's
// and the project's failure budget applies beside the address's.
func (k *keyChecker) authenticate(w http.ResponseWriter, r *http.Request, withProject bool) (string, bool) {
	key, ok := parseAPIKey(r.Header.Get("Authorization"))
	if !ok {
		writeError(w, http.StatusUnauthorized, "missing Authorization: key=API_KEY header")
		return "", false
	}
	project := ""
	if withProject {
		if project = strings.TrimSpace(r.Header.Get("project_id")); project == "" {
			writeError(w, http.StatusUnauthorized, "missing project_id header")
			return "", false
		}
	}
	return k.check(w, r, project, key)
}

// check verifies key (for project, if not empty) under the failed-login
// budgets of the client's address and of the project.
func (k *keyChecker) check(w http.ResponseWriter, r *http.Request, project, key string) (string, bool) {
	addr := r.RemoteAddr
	hold, ok := k.logins.Check(addr, project)
	if !ok {
		writeThrottled(w, project, hold)
		return "", false
	}
	wait(r.Context(), hold)
	sender, err := k.auth.AuthenticateKey(r.Context(), project, key)
	switch {
	case errors.Is(err, auth.ErrBadCredentials):
		if retry := k.logins.Failed(addr, project); retry > 0 {
			writeThrottled(w, project, retry)
			return "", false
		}
		msg := "the API key is not valid"
		if project != "" {
			msg += " for this project_id"
		}
		writeError(w, http.StatusUnauthorized, msg)
		return "", false
	case err != nil:
		// The key could not be checked (store closed, request cancelled):
		// retryable, and not the client's fault, so not a failure either.
		k.logins.Succeeded(addr, project)
		k.log.Error().Err(err).Msg("authenticate API key")
		writeUnavailable(w)
		return "", false
	}
	k.logins.Succeeded(addr, project)
	return sender, true
}

// wait holds a request for d (the limiter's delay after recent failures),
// or until the client gives up.
func wait(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// writeThrottled answers 429 with Retry-After in whole seconds (at least
// 1). Without a project only the address's budget can be spent, and the
// text says so.
func writeThrottled(w http.ResponseWriter, project string, retry time.Duration) {
	secs := setRetryAfter(w, retry)
	who := " from this address"
	if project != "" {
		who = ""
	}
	writeError(w, http.StatusTooManyRequests, "too many failed authentications"+who+"; retry after "+strconv.FormatInt(secs, 10)+"s")
}

// writeUnavailable answers 503 for a failure that is not the client's: it
// may retry in a few seconds.
func writeUnavailable(w http.ResponseWriter) {
	w.Header().Set("Retry-After", "10")
	writeError(w, http.StatusServiceUnavailable, "service unavailable, retry later")
}

// noLimit is the LoginLimiter of a handler built without one.
type noLimit struct{}

func (noLimit) Check(string, string) (time.Duration, bool) { return 0, true }
func (noLimit) Failed(string, string) time.Duration        { return 0 }
func (noLimit) Succeeded(string, string)                   {}
