package httpapi

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/ccsd/ccsd/auth"
)

// TokenGranter grants access tokens for JWT-bearer assertions;
// *auth.ServiceAccounts implements it. A refusal is an *auth.GrantError
// (wrapping auth.ErrBadCredentials when the assertion is no valid
// credential); any other error is internal.
type TokenGranter interface {
	Grant(ctx context.Context, assertion string) (auth.AccessToken, error)
}

// maxTokenBody bounds a POST /token body: an assertion of at most
// auth.MaxJWTBytes and the form around it.
const maxTokenBody = auth.MaxJWTBytes + 1024

// TokenHandler serves POST /token, the OAuth2 token endpoint a
// service-account file's token_uri names: the JWT-bearer grant of RFC
// 7523, form-encoded (grant_type, assertion), as Google's auth libraries
// send it. Answers follow RFC 6749 §5: {"access_token", "expires_in",
// "token_type": "Bearer"}, or 400 {"error", "error_description"}.
type TokenHandler struct {
	grants TokenGranter
	logins LoginLimiter
	log    zerolog.Logger
}

// NewTokenHandler returns the /token handler. logins throttles refused
// assertions (nil: no throttling) with the budget API keys use.
func NewTokenHandler(g TokenGranter, logins LoginLimiter, log zerolog.Logger) *TokenHandler {
	if logins == nil {
		logins = noLimit{}
	}
	return &TokenHandler{grants: g, logins: logins, log: log}
}

// Mount registers POST /token on the public API.
func (h *TokenHandler) Mount(a *API) { a.Handle("POST /token", h) }

type tokenResponse struct {
	AccessToken string `json:"access_token"`
	ExpiresIn   int64  `json:"expires_in"`
	TokenType   string `json:"token_type"`
}

type oauthError struct {
	Error       string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

// writeOAuthError answers an RFC 6749 §5.2 error.
func writeOAuthError(w http.ResponseWriter, status int, code, desc string) {
	noStore(w)
	writeJSON(w, status, oauthError{Error: code, Description: desc})
}

// ServeHTTP handles one token request.
func (h *TokenHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	form, ok := h.readForm(w, r)
	if !ok {
		return
	}
	if gt := form.Get("grant_type"); gt != auth.GrantTypeJWTBearer {
		writeOAuthError(w, http.StatusBadRequest, "unsupported_grant_type", "grant_type must be "+auth.GrantTypeJWTBearer+": "+clip(gt))
		return
	}
	assertion := form.Get("assertion")
	if assertion == "" {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "the assertion (a JWT signed with the service-account key) is missing")
		return
	}
	addr := r.RemoteAddr
	hold, ok := h.logins.Check(addr, "")
	if !ok {
		h.throttled(w, hold)
		return
	}
	wait(r.Context(), hold)
	tok, err := h.grants.Grant(r.Context(), assertion)
	var ge *auth.GrantError
	switch {
	case errors.As(err, &ge):
		if errors.Is(err, auth.ErrBadCredentials) {
			if retry := h.logins.Failed(addr, ""); retry > 0 {
				h.throttled(w, retry)
				return
			}
		}
		writeOAuthError(w, http.StatusBadRequest, ge.Code, ge.Description)
		return
	case err != nil:
		h.logins.Succeeded(addr, "")
		h.log.Error().Err(err).Msg("token: grant")
		w.Header().Set("Retry-After", "10")
		writeOAuthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "the token could not be granted; retry later")
		return
	}
	h.logins.Succeeded(addr, "")
	w.Header().Set("Pragma", "no-cache")
	noStore(w)
	writeJSON(w, http.StatusOK, tokenResponse{AccessToken: tok.Token, ExpiresIn: int64(tok.ExpiresIn / time.Second), TokenType: "Bearer"})
}

// readForm reads the form body (bounded); false: answered.
func (h *TokenHandler) readForm(w http.ResponseWriter, r *http.Request) (url.Values, bool) {
	ct := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Type")))
	if ct != "" && !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "the body must be application/x-www-form-urlencoded")
		return nil, false
	}
	body, err := readAll(w, r, maxTokenBody)
	if err != nil {
		if tooLarge(err) {
			writeOAuthError(w, http.StatusRequestEntityTooLarge, "invalid_request", "the request body is larger than "+strconv.Itoa(maxTokenBody)+" bytes")
		} else {
			writeOAuthError(w, http.StatusBadRequest, "invalid_request", "cannot read the request body")
		}
		return nil, false
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "the body is not a valid form")
		return nil, false
	}
	return form, true
}

// throttled answers 429 past the failed-login budget.
func (h *TokenHandler) throttled(w http.ResponseWriter, retry time.Duration) {
	secs := setRetryAfter(w, retry)
	writeOAuthError(w, http.StatusTooManyRequests, "slow_down", "too many refused assertions from this address; retry after "+strconv.FormatInt(secs, 10)+"s")
}
