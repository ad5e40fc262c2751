package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/rs/zerolog"

	"github.com/ccsd/ccsd/groups"
)

// NotificationPaths are the URL paths of the device-group API: the GCM and
// the FCM spelling. NotificationHandler.Mount registers both.
var NotificationPaths = []string{"/gcm/notification", "/fcm/notification"}

// GroupRegistry is the device-group registry the notification endpoint
// serves; *groups.Registry implements it. Its refusals wrap the groups
// sentinel errors, which notificationError maps to HTTP.
type GroupRegistry interface {
	Create(ctx context.Context, sender, name string, regIDs []string) (string, error)
	Add(ctx context.Context, sender, key, name string, regIDs []string) (string, error)
	Remove(ctx context.Context, sender, key, name string, regIDs []string) (string, error)
	Lookup(ctx context.Context, sender, name string) (string, error)
}

// NotificationHandler serves the device-group API (GCM's "user
// notifications", spec §8) on each of NotificationPaths:
//
//	POST {"operation":"create","notification_key_name":N,"registration_ids":[...]}
//	POST {"operation":"add"|"remove","notification_key":K,"notification_key_name":N (optional),"registration_ids":[...]}
//	GET  ?notification_key_name=N
//
// Each answers 200 {"notification_key": K}. Requests carry the headers
// "Authorization: key=API_KEY" and "project_id: SENDER_ID". Every error is
// a JSON object {"error": "..."}; the rules behind them are package
// groups'.
type NotificationHandler struct {
	reg  GroupRegistry
	keys keyChecker
}

// NewNotificationHandler returns the device-group handler over reg,
// authenticating app servers with auth. logins throttles failed API keys
// (nil: no throttling).
func NewNotificationHandler(reg GroupRegistry, auth KeyAuthenticator, logins LoginLimiter, log zerolog.Logger) *NotificationHandler {
	return &NotificationHandler{reg: reg, keys: newKeyChecker(auth, logins, log)}
}

// Mount registers the handler on the public API at both paths, for every
// method: the handler answers 405 itself, naming GET and POST.
func (h *NotificationHandler) Mount(a *API) {
	for _, p := range NotificationPaths {
		a.Handle(p, h)
	}
}

// notificationRequest is the JSON body of a POST.
type notificationRequest struct {
	Operation string   `json:"operation"`
	Name      string   `json:"notification_key_name"`
	Key       string   `json:"notification_key"`
	RegIDs    []string `json:"registration_ids"`
}

type keyResponse struct {
	Key string `json:"notification_key"`
}

// ServeHTTP handles one request. Its answers carry a notification_key, a
// secret of the app server's, so none is cached.
func (h *NotificationHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	switch {
	case !slices.Contains(NotificationPaths, r.URL.Path):
		// Mounted by itself, the handler sees every path.
		writeError(w, http.StatusNotFound, "not found")
		return
	case r.Method != http.MethodGet && r.Method != http.MethodPost:
		w.Header().Set("Allow", "GET, POST")
		writeError(w, http.StatusMethodNotAllowed, "method not allowed (use GET or POST)")
		return
	}
	sender, ok := h.keys.authenticate(w, r, true)
	if !ok {
		return
	}
	var key string
	var err error
	if r.Method == http.MethodGet {
		key, err = h.reg.Lookup(r.Context(), sender, r.URL.Query().Get("notification_key_name"))
	} else {
		body, ok := readBody(w, r, DefaultMaxBodyBytes)
		if !ok {
			return
		}
		key, err = h.post(r.Context(), sender, body)
	}
	if err != nil {
		writeNotificationError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, keyResponse{Key: key})
}

// post decodes a POST body and runs its operation.
func (h *NotificationHandler) post(ctx context.Context, sender string, body []byte) (string, error) {
	var rq notificationRequest
	if err := json.Unmarshal(body, &rq); err != nil {
		return "", jsonError(err)
	}
	if name, dup := repeatedField(body); dup {
		return "", fmt.Errorf("%w: bad JSON: the field %q is repeated", groups.ErrInvalidRequest, name)
	}
	switch rq.Operation {
	case "create":
		return h.reg.Create(ctx, sender, rq.Name, rq.RegIDs)
	case "add":
		return h.reg.Add(ctx, sender, rq.Key, rq.Name, rq.RegIDs)
	case "remove":
		return h.reg.Remove(ctx, sender, rq.Key, rq.Name, rq.RegIDs)
	case "":
		return "", fmt.Errorf("%w: operation is required", groups.ErrInvalidRequest)
	default:
		return "", fmt.Errorf("%w: unknown operation %q (want create, add or remove)", groups.ErrInvalidRequest, rq.Operation)
	}
}

// writeNotificationError answers a refused or failed operation. It is the
// one place that maps the groups errors to HTTP; internal errors get a
// generic text, so store details never reach a client.
func writeNotificationError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, groups.ErrNotFound):
		// The same body whatever the key or name, and whoever owns it.
		writeError(w, http.StatusNotFound, "notification_key not found")
	case errors.Is(err, groups.ErrNameExists):
		writeError(w, http.StatusBadRequest, "notification_key_name already exists")
	case errors.Is(err, groups.ErrNoValidRegistrations):
		writeError(w, http.StatusBadRequest, "no valid registration ids")
	case errors.Is(err, groups.ErrInvalidRequest), errors.Is(err, groups.ErrNameMismatch),
		errors.Is(err, groups.ErrTooManyMembers), errors.Is(err, groups.ErrBadRegistration),
		errors.Is(err, groups.ErrMixedApps):
		writeError(w, http.StatusBadRequest, strings.TrimPrefix(err.Error(), "groups: "))
	case groups.Temporary(err):
		writeUnavailable(w)
	default:
		writeError(w, http.StatusInternalServerError, "internal error")
	}
}

// jsonError describes a body that does not decode into a request.
func jsonError(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		field, want := te.Field, "a string"
		if strings.HasPrefix(field, "registration_ids") {
			field, want = "registration_ids", "an array of strings"
		}
		return fmt.Errorf("%w: bad JSON: %s must be %s", groups.ErrInvalidRequest, field, want)
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("%w: bad JSON at byte %d: %v", groups.ErrInvalidRequest, se.Offset, se)
	}
	if errors.As(err, &te) {
		return fmt.Errorf("%w: bad JSON: the body must be a JSON object", groups.ErrInvalidRequest)
	}
	return fmt.Errorf("%w: bad JSON: %v", groups.ErrInvalidRequest, err)
}

// repeatedField reports the first top-level field that a JSON object body
// (already decoded once, so valid) names twice. encoding/json keeps the last
// of the two, so {"operation":"create","operation":"remove"} would mean
// whatever the reader picks; such a body is refused instead. Names compare
// without case, as encoding/json matches them to the request's fields
// (ccs.DuplicateKey, for map-decoded bodies, compares them exactly).
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
