package groups

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/ccsd/ccsd/store"
)

// Authenticator checks an app server's credentials: user is the sender id
// (the project_id header), password the API key. It returns the sender id
// the request acts as. auth.Senders implements it.
type Authenticator interface {
	Authenticate(ctx context.Context, user, password string) (identity string, err error)
}

// MaxBodyBytes bounds a request body; a longer one is answered 413.
const MaxBodyBytes = 64 << 10

// Paths are the URL paths the handler serves: the GCM and the FCM spelling
// of the device-group endpoint. Mount the handler on both.
var Paths = []string{"/gcm/notification", "/fcm/notification"}

// Errors of the HTTP layer only; httpError maps them with the Registry's.
var (
	errUnauthorized = errors.New("groups: unauthorized")
	errMethod       = errors.New("groups: method not allowed")
	errNoRoute      = errors.New("groups: no such endpoint")
	errTooLarge     = errors.New("groups: request body too large")
)

// Handler returns the HTTP handler of the device-group API, authenticating
// app servers with auth. It serves, on each of Paths:
//
//	POST {"operation":"create","notification_key_name":N,"registration_ids":[...]}
//	POST {"operation":"add"|"remove","notification_key":K,"notification_key_name":N (optional),"registration_ids":[...]}
//	GET  ?notification_key_name=N
//
// Each answers 200 {"notification_key": K}. Requests carry the headers
// "Authorization: key=API_KEY" and "project_id: SENDER_ID". Every error is a
// JSON object {"error": "..."} with the status given by httpError. logins
// throttles failed API keys (nil: no throttling).
func (r *Registry) Handler(auth Authenticator, logins LoginLimiter) http.Handler {
	if logins == nil {
		logins = noLimit{}
	}
	return &handler{reg: r, auth: auth, logins: logins}
}

type handler struct {
	reg    *Registry
	auth   Authenticator
	logins LoginLimiter
}

// request is the JSON body of a POST.
type request struct {
	Operation string   `json:"operation"`
	Name      string   `json:"notification_key_name"`
	Key       string   `json:"notification_key"`
	RegIDs    []string `json:"registration_ids"`
}

type keyResponse struct {
	Key string `json:"notification_key"`
}

type errorResponse struct {
	Error string `json:"error"`
}

// ServeHTTP handles one request: every outcome goes through writeJSON, every
// error through httpError.
func (h *handler) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	key, err := h.serve(w, req)
	if err != nil {
		status, msg := httpError(err)
		if status == http.StatusMethodNotAllowed {
			w.Header().Set("Allow", "GET, POST")
		}
		setRetryAfter(w, err)
		writeJSON(w, status, errorResponse{Error: msg})
		return
	}
	writeJSON(w, http.StatusOK, keyResponse{Key: key})
}

func (h *handler) serve(w http.ResponseWriter, req *http.Request) (string, error) {
	if !isPath(req.URL.Path) {
		return "", errNoRoute
	}
	if req.Method != http.MethodGet && req.Method != http.MethodPost {
		return "", errMethod
	}
	ctx := req.Context()
	sender, err := h.authenticate(ctx, req)
	if err != nil {
		return "", err
	}
	if req.Method == http.MethodGet {
		return h.reg.Lookup(ctx, sender, req.URL.Query().Get("notification_key_name"))
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, MaxBodyBytes))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return "", fmt.Errorf("%w: more than %d bytes", errTooLarge, MaxBodyBytes)
	}
	if err != nil {
		return "", fmt.Errorf("%w: cannot read the body: %v", ErrInvalidRequest, err)
	}
	var rq request
	if err := json.Unmarshal(body, &rq); err != nil {
		return "", jsonError(err)
	}
	if name, dup := repeatedField(body); dup {
		return "", fmt.Errorf("%w: bad JSON: the field %q is repeated", ErrInvalidRequest, name)
	}
	switch rq.Operation {
	case "create":
		return h.reg.Create(ctx, sender, rq.Name, rq.RegIDs)
	case "add":
		return h.reg.Add(ctx, sender, rq.Key, rq.Name, rq.RegIDs)
	case "remove":
		return h.reg.Remove(ctx, sender, rq.Key, rq.Name, rq.RegIDs)
	case "":
		return "", fmt.Errorf("%w: operation is required", ErrInvalidRequest)
	default:
		return "", fmt.Errorf("%w: unknown operation %q (want create, add or remove)", ErrInvalidRequest, rq.Operation)
	}
}

// authenticate checks the Authorization and project_id headers and returns
// the sender id. Header names are case-insensitive, as always in HTTP.
func (h *handler) authenticate(ctx context.Context, req *http.Request) (string, error) {
	authz := strings.TrimSpace(req.Header.Get("Authorization"))
	scheme, key, ok := strings.Cut(authz, "=")
	key = strings.TrimSpace(key)
	if !ok || !strings.EqualFold(strings.TrimSpace(scheme), "key") || key == "" {
		return "", fmt.Errorf("%w: missing Authorization: key=API_KEY header", errUnauthorized)
	}
	project := strings.TrimSpace(req.Header.Get("project_id"))
	if project == "" {
		return "", fmt.Errorf("%w: missing project_id header", errUnauthorized)
	}
	return h.checkKey(ctx, req.RemoteAddr, project, key)
}

// checkKey verifies key for project under the failed-login budget of the
// client's address and of the project.
func (h *handler) checkKey(ctx context.Context, addr, project, key string) (string, error) {
	hold, ok := h.logins.Check(addr, project)
	if !ok {
		return "", &throttledError{retry: hold}
	}
	if hold > 0 {
		t := time.NewTimer(hold)
		select {
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
	sender, err := h.auth.Authenticate(ctx, project, key)
	switch {
	case err != nil && unavailable(err):
		h.logins.Succeeded(addr, project) // not the client's failure
		return "", fmt.Errorf("groups: authenticate: %w", err)
	case err != nil:
		if retry := h.logins.Failed(addr, project); retry > 0 {
			return "", &throttledError{retry: retry}
		}
		return "", fmt.Errorf("%w: the API key is not valid for this project_id", errUnauthorized)
	}
	h.logins.Succeeded(addr, project)
	return sender, nil
}

// httpError is the one place that maps errors to HTTP: it returns the
// status and the text of the JSON error answer. Internal errors get a
// generic text, so store details never reach a client.
func httpError(err error) (status int, msg string) {
	switch {
	case errors.Is(err, errNoRoute):
		return http.StatusNotFound, "not found"
	case errors.Is(err, errMethod):
		return http.StatusMethodNotAllowed, "method not allowed (use GET or POST)"
	case errors.Is(err, errUnauthorized):
		return http.StatusUnauthorized, publicText(err)
	case errors.As(err, new(*throttledError)):
		return http.StatusTooManyRequests, publicText(err)
	case errors.Is(err, errTooLarge):
		return http.StatusRequestEntityTooLarge, publicText(err)
	case errors.Is(err, ErrNotFound):
		// The same body whatever the key or name, and whoever owns it.
		return http.StatusNotFound, "notification_key not found"
	case errors.Is(err, ErrNameExists):
		return http.StatusBadRequest, "notification_key_name already exists"
	case errors.Is(err, ErrNoValidRegistrations):
		return http.StatusBadRequest, "no valid registration ids"
	case errors.Is(err, ErrInvalidRequest), errors.Is(err, ErrNameMismatch),
		errors.Is(err, ErrTooManyMembers), errors.Is(err, ErrBadRegistration),
		errors.Is(err, ErrMixedApps):
		return http.StatusBadRequest, publicText(err)
	case unavailable(err):
		return http.StatusServiceUnavailable, "service unavailable, retry later"
	}
	return http.StatusInternalServerError, "internal error"
}

// unavailable reports a transient failure: the request was cancelled or
// timed out, or the store is shutting down.
func unavailable(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, store.ErrClosed)
}

// publicText is an error's message without the package prefix.
func publicText(err error) string {
	return strings.TrimPrefix(err.Error(), "groups: ")
}

// jsonError describes a body that does not decode into a request.
func jsonError(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		field, want := te.Field, "a string"
		if strings.HasPrefix(field, "registration_ids") {
			field, want = "registration_ids", "an array of strings"
		}
		return fmt.Errorf("%w: bad JSON: %s must be %s", ErrInvalidRequest, field, want)
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("%w: bad JSON at byte %d: %v", ErrInvalidRequest, se.Offset, se)
	}
	if errors.As(err, &te) {
		return fmt.Errorf("%w: bad JSON: the body must be a JSON object", ErrInvalidRequest)
	}
	return fmt.Errorf("%w: bad JSON: %v", ErrInvalidRequest, err)
}

// repeatedField reports the first top-level field that a JSON object body
// (already decoded once, so valid) names twice. encoding/json keeps the last
// of the two, so {"operation":"create","operation":"remove"} would mean
// whatever the reader picks; such a body is refused instead. Names compare
// without case, as encoding/json matches them to the request's fields.
func repeatedField(body []byte) (string, bool) {
	dec := json.NewDecoder(bytes.NewReader(body))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return "", false
	}
	seen := make(map[string]bool)
	for dec.More() {
		t, err := dec.Token()
		name, ok := t.(string)
		if err != nil || !ok {
			return "", false
		}
		folded := strings.ToLower(name)
		if seen[folded] {
			return name, true
		}
		seen[folded] = true
		var skip json.RawMessage
		if dec.Decode(&skip) != nil {
			return "", false
		}
	}
	return "", false
}

func isPath(p string) bool {
	for _, q := range Paths {
		if p == q {
			return true
		}
	}
	return false
}

// writeJSON writes v as the JSON answer with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil { // only strings inside: cannot happen
		status, b = http.StatusInternalServerError, []byte(`{"error":"internal error"}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n')) // the client may be gone; nothing to do
}
