package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/ccsd/ccsd/auth"
	"github.com/ccsd/ccsd/internal/limit"
)

// DeviceService is what the device endpoints need. *auth.Devices
// implements it; its errors are classified with the auth sentinel errors.
type DeviceService interface {
	Checkin(ctx context.Context) (androidID, securityToken string, err error)
	Authenticate(ctx context.Context, user, password string) (identity string, err error)
	Register(ctx context.Context, deviceID, senderID, app string) (regID string, err error)
	Unregister(ctx context.Context, deviceID, senderID, app string) error
}

// Config configures the public API handler.
type Config struct {
	// Devices serves checkin and registration. Required.
	Devices DeviceService
	// Logger receives one debug line per request and the internal errors.
	Logger zerolog.Logger
	// MaxBodyBytes bounds request bodies; 0 means DefaultMaxBodyBytes.
	// Larger bodies get 413.
	MaxBodyBytes int64
	// CheckinLimit and RegisterLimit bound the /checkin and
	// /c2dm/register3 requests of one source address (limit.AddrKey of
	// the connection's address: ccsd is reached directly, so
	// X-Forwarded-For is not trusted). nil: no limit. Past them the answer
	// is 429 with Retry-After.
	CheckinLimit, RegisterLimit *limit.Rate
}

// API is the public HTTPS handler: the device endpoints, plus whatever other
// packages mount with Handle.
type API struct {
	*router
	devices DeviceService
	log     zerolog.Logger
	maxBody int64

	checkinLimit, registerLimit *limit.Rate
	stats                       apiStats
}

// New returns the public API handler with POST /checkin and
// POST /c2dm/register3 mounted. It panics if cfg.Devices is nil.
func New(cfg Config) *API {
	if cfg.Devices == nil {
		panic("httpapi: Config.Devices is nil")
	}
	a := &API{
		router:  newRouter(cfg.Logger),
		devices: cfg.Devices,
		log:     cfg.Logger,
		maxBody: cfg.MaxBodyBytes,

		checkinLimit:  cfg.CheckinLimit,
		registerLimit: cfg.RegisterLimit,
	}
	if a.maxBody <= 0 {
		a.maxBody = DefaultMaxBodyBytes
	}
	a.handleFunc("POST /checkin", a.checkin)
	a.handleFunc("POST /c2dm/register3", a.register)
	return a
}

// checkinResponse is the JSON answer of POST /checkin.
type checkinResponse struct {
	AndroidID     string `json:"android_id"`
	SecurityToken string `json:"security_token"`
}

// checkin handles POST /checkin: the body is empty or a JSON object (its
// fields are ignored); the answer is a new device's android_id and
// security_token.
func (a *API) checkin(w http.ResponseWriter, r *http.Request) {
	if ok, retry := a.checkinLimit.Reserve(limit.AddrKey(r.RemoteAddr)); !ok {
		a.stats.checkinRefused.Add(1)
		setRetryAfter(w, retry)
		writeError(w, http.StatusTooManyRequests, "too many checkins from this address; retry later")
		return
	}
	body, ok := readBody(w, r, a.maxBody)
	if !ok {
		return
	}
	if body = bytes.TrimSpace(body); len(body) > 0 && !isJSONObject(body) {
		writeError(w, http.StatusBadRequest, "body must be empty or a JSON object")
		return
	}
	id, token, err := a.devices.Checkin(r.Context())
	if err != nil {
		a.log.Error().Err(err).Msg("checkin failed")
		writeError(w, http.StatusInternalServerError, "service unavailable")
		return
	}
	noStore(w)
	writeJSON(w, http.StatusOK, checkinResponse{AndroidID: id, SecurityToken: token})
}

// isJSONObject reports whether b is one valid JSON object.
func isJSONObject(b []byte) bool {
	if b[0] != '{' {
		return false
	}
	var obj map[string]any
	return json.Unmarshal(b, &obj) == nil
}

// GCM register endpoint error codes, sent as "Error=CODE".
const (
	codeAuthenticationFailed = "AUTHENTICATION_FAILED"
	codeInvalidParameters    = "INVALID_PARAMETERS"
	codeInvalidSender        = "INVALID_SENDER"
	codeServiceNotAvailable  = "SERVICE_NOT_AVAILABLE"
	// codeTooManyRegistrations is GCM's answer for a device with too many
	// apps registered.
	codeTooManyRegistrations = "TOO_MANY_REGISTRATIONS"
)

// Bounds of what a register3 request may carry. Android package names are
// at most 255 bytes (auth refuses longer apps); sender ids at most 64; a
// GCM client sends a dozen fields. Nothing longer is a real client's.
const (
	maxFormValueBytes = 512
	maxFormFields     = 64
	maxCredentialLen  = 256 // android id and security token, each
)

// register handles POST /c2dm/register3. Form fields: app, sender, device
// (optional; must be the authenticated android id), delete ("true" or "1"
// to unregister). Header: "Authorization: AidLogin ANDROID_ID:TOKEN".
// Answers: 200 "token=REGID" or "deleted=APP"; errors "Error=CODE": past
// the per-address rate 429 SERVICE_NOT_AVAILABLE with Retry-After, past the
// device's registrations 400 TOO_MANY_REGISTRATIONS, a field over its
// bound 400 INVALID_PARAMETERS.
func (a *API) register(w http.ResponseWriter, r *http.Request) {
	if ok, retry := a.registerLimit.Reserve(limit.AddrKey(r.RemoteAddr)); !ok {
		// GCM clients retry SERVICE_NOT_AVAILABLE with exponential
		// backoff; there is no register code for rate limiting.
		a.stats.registerRefused.Add(1)
		setRetryAfter(w, retry)
		writeRegisterError(w, http.StatusTooManyRequests, codeServiceNotAvailable)
		return
	}
	if !a.parseRegisterForm(w, r) {
		return
	}
	user, password, ok := parseAidLogin(r.Header.Get("Authorization"))
	if !ok {
		writeRegisterError(w, http.StatusUnauthorized, codeAuthenticationFailed)
		return
	}
	deviceID, err := a.devices.Authenticate(r.Context(), user, password)
	if err != nil {
		status, code := registerErrorStatus(err)
		if status == http.StatusInternalServerError {
			a.log.Error().Err(err).Msg("register: authenticate device")
		}
		writeRegisterError(w, status, code)
		return
	}
	if dev := r.Form.Get("device"); dev != "" && dev != deviceID {
		writeRegisterError(w, http.StatusUnauthorized, codeAuthenticationFailed)
		return
	}

	app, sender := r.Form.Get("app"), r.Form.Get("sender")
	if app == "" || sender == "" {
		writeRegisterError(w, http.StatusBadRequest, codeInvalidParameters)
		return
	}
	del, ok := parseDelete(r.Form.Get("delete"))
	if !ok {
		writeRegisterError(w, http.StatusBadRequest, codeInvalidParameters)
		return
	}

	if del {
		if err := a.devices.Unregister(r.Context(), deviceID, sender, app); err != nil {
			a.failRegister(w, err, "unregister")
			return
		}
		writeText(w, http.StatusOK, "deleted="+app)
		return
	}
	regID, err := a.devices.Register(r.Context(), deviceID, sender, app)
	if err != nil {
		a.failRegister(w, err, "register")
		return
	}
	noStore(w)
	writeText(w, http.StatusOK, "token="+regID)
}

// parseRegisterForm reads a register3 request's form (query and body,
// bounded by maxBody and formWithinBounds). When it returns false it has
// answered INVALID_PARAMETERS: 413 for a body over the bound, else 400.
func (a *API) parseRegisterForm(w http.ResponseWriter, r *http.Request) bool {
	r.Body = http.MaxBytesReader(w, r.Body, a.maxBody)
	err := r.ParseForm()
	if err == nil {
		// Drain what ParseForm did not read (a body that is not a form), so
		// the size limit applies to it too; only going past it matters.
		if _, drain := io.Copy(io.Discard, r.Body); tooLarge(drain) {
			err = drain
		}
	}
	switch {
	case tooLarge(err):
		writeRegisterError(w, http.StatusRequestEntityTooLarge, codeInvalidParameters)
		return false
	case err != nil, !formWithinBounds(r.Form):
		writeRegisterError(w, http.StatusBadRequest, codeInvalidParameters)
		return false
	}
	return true
}

// failRegister answers a failed register or unregister call.
func (a *API) failRegister(w http.ResponseWriter, err error, what string) {
	status, code := registerErrorStatus(err)
	if status == http.StatusInternalServerError {
		a.log.Error().Err(err).Msg(what + " failed")
	}
	writeRegisterError(w, status, code)
}

// registerErrorStatus maps an auth error to the register endpoint's status
// and GCM error code. This is the one place that mapping is made.
func registerErrorStatus(err error) (int, string) {
	switch {
	case errors.Is(err, auth.ErrBadCredentials), errors.Is(err, auth.ErrUnknownDevice):
		return http.StatusUnauthorized, codeAuthenticationFailed
	case errors.Is(err, auth.ErrUnknownSender), errors.Is(err, auth.ErrSenderRevoked):
		return http.StatusBadRequest, codeInvalidSender
	case errors.Is(err, auth.ErrInvalidParameters):
		return http.StatusBadRequest, codeInvalidParameters
	case errors.Is(err, auth.ErrTooManyRegistrations):
		// 400, not 429: waiting does not help, unregistering an app does.
		return http.StatusBadRequest, codeTooManyRegistrations
	default:
		return http.StatusInternalServerError, codeServiceNotAvailable
	}
}

// parseAidLogin splits "AidLogin ANDROID_ID:SECURITY_TOKEN". The scheme is
// case-insensitive.
func parseAidLogin(h string) (user, password string, ok bool) {
	scheme, cred, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "AidLogin") {
		return "", "", false
	}
	user, password, ok = strings.Cut(strings.TrimSpace(cred), ":")
	if !ok || user == "" || password == "" || len(user) > maxCredentialLen || len(password) > maxCredentialLen {
		return "", "", false
	}
	return user, password, true
}

// formWithinBounds reports whether a register3 form (query and body) has
// at most maxFormFields fields, each name and value at most
// maxFormValueBytes, so no client-chosen string reaches the store or a log
// unbounded.
func formWithinBounds(form map[string][]string) bool {
	n := 0
	for k, vs := range form {
		if len(k) > maxFormValueBytes {
			return false
		}
		for _, v := range vs {
			if n++; n > maxFormFields || len(v) > maxFormValueBytes {
				return false
			}
		}
	}
	return true
}

// setRetryAfter sets Retry-After to retry rounded up to whole seconds, at
// least 1, and returns that number for the answer's text.
func setRetryAfter(w http.ResponseWriter, retry time.Duration) int64 {
	secs := max(int64(math.Ceil(retry.Seconds())), 1)
	w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	return secs
}

// parseDelete reads the delete form field: "true" or "1" unregisters,
// absent, "false" or "0" registers, anything else is invalid.
func parseDelete(v string) (del, ok bool) {
	switch strings.ToLower(v) {
	case "true", "1":
		return true, true
	case "", "false", "0":
		return false, true
	}
	return false, false
}

// writeRegisterError writes "Error=CODE" with the given status.
func writeRegisterError(w http.ResponseWriter, status int, code string) {
	writeText(w, status, "Error="+code)
}

// writeText writes a one-line text/plain body without a trailing newline,
// as GCM's register endpoint did.
func writeText(w http.ResponseWriter, status int, body string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}
