package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/ccsd/ccsd/auth"
)

// SenderService is what the admin endpoints need. *auth.Senders implements
// it; its errors are classified with the auth sentinel errors.
type SenderService interface {
	Create(id string) (auth.Sender, string, error)
	Get(id string) (auth.Sender, error)
	List() ([]auth.Sender, error)
	Revoke(id string) error
	SetGroupCopies(id string, on bool) (auth.Sender, error)
}

// AdminConfig configures the admin handler.
type AdminConfig struct {
	// Senders serves the sender endpoints. Required.
	Senders SenderService
	// Logger receives one debug line per request and the internal errors.
	Logger zerolog.Logger
	// Health, if set, is called by GET /healthz; an error gives 503.
	// /healthz is liveness: it fails only when the process should be
	// restarted or is going away.
	Health func(ctx context.Context) error
	// Ready, if set, is called by GET /readyz; an error gives 503 with the
	// reason of a *NotReady in it. Nil means always ready.
	Ready func(ctx context.Context) error
	// Instance, if set, is reported by GET /healthz, so that a client that
	// found this address in a data directory's run.json can check it reached
	// the server of that directory and not another process on a reused port.
	Instance string
	// Revoked, if set, is called after a sender's key is revoked, so that
	// its live sessions end too, not only its future logins.
	Revoked func(senderID string)
	// Metrics, if set, serves GET /metrics (the Prometheus text format).
	// The handler comes from the caller, so that this package knows
	// nothing of Prometheus.
	Metrics http.Handler
	// Debug, if set, serves everything under /debug/pprof/ (Go's pprof
	// handlers, mounted on this mux only: never on the public listener).
	Debug http.Handler
	// Connections, if set, serves GET /admin/connections and the drain
	// endpoints (admin_conns.go).
	Connections ConnectionService
}

// Admin is the operator handler for the loopback admin listener:
//
//	POST /admin/senders              {"id": "optional"} -> 201 {"sender_id", "api_key"}
//	GET  /admin/senders              -> 200 [{"sender_id", "created", "revoked"}]
//	GET  /admin/senders/{id}         -> 200 {"sender_id", "created", "revoked"}
//	POST /admin/senders/{id}/revoke  -> 200 {"sender_id", "created", "revoked": true}
//	PATCH /admin/senders/{id}        {"group_copies": bool} -> 200 the sender
//	GET  /admin/connections, POST /admin/drain, POST /admin/connections/{id}/drain: admin_conns.go
//	GET  /healthz                    -> 200 {"status": "ok", "instance": "..."}
//	GET  /readyz                     -> 200 {"status": "ready"}
//	                                    503 {"status": "not ready", "reason": "store"|"draining"|"starting", "error"}
//	GET  /metrics                    -> 200 Prometheus text format (when AdminConfig.Metrics is set)
//	     /debug/pprof/...            -> Go's pprof handlers (when AdminConfig.Debug is set)
//
// Errors are {"error": "..."}: 400 bad input, 403 not from loopback or
// cross-origin, 404 unknown sender, 409 sender exists, 413 body too large,
// 421 Host not localhost or a loopback IP (DNS rebinding), 500 internal,
// 503 unhealthy. Other packages may mount more admin
// endpoints with Handle.
type Admin struct {
	*router
	senders SenderService
	health  func(ctx context.Context) error
	ready   func(ctx context.Context) error
	inst    string
	revoked func(senderID string)
	conns   ConnectionService
	log     zerolog.Logger
	refused zerolog.Logger // log, sampled: refusals come as fast as a hostile page sends them
	guard   http.Handler
}

// NewAdmin returns the admin handler. It panics if cfg.Senders is nil.
func NewAdmin(cfg AdminConfig) *Admin {
	if cfg.Senders == nil {
		panic("httpapi: AdminConfig.Senders is nil")
	}
	a := &Admin{router: newRouter(cfg.Logger), senders: cfg.Senders, health: cfg.Health, ready: cfg.Ready, inst: cfg.Instance, revoked: cfg.Revoked, log: cfg.Logger}
	a.refused = cfg.Logger.Sample(&zerolog.BurstSampler{Burst: 10, Period: time.Minute})
	a.handleFunc("POST /admin/senders", a.createSender)
	a.handleFunc("GET /admin/senders", a.listSenders)
	a.handleFunc("GET /admin/senders/{id}", a.getSender)
	a.handleFunc("POST /admin/senders/{id}/revoke", a.revokeSender)
	a.handleFunc("PATCH /admin/senders/{id}", a.patchSender) // admin_sender_opts.go
	a.handleFunc("GET /healthz", a.healthz)
	a.handleFunc("GET /readyz", a.readyz)
	if cfg.Metrics != nil {
		a.Handle("GET /metrics", cfg.Metrics)
	}
	if cfg.Debug != nil {
		a.Handle("/debug/pprof/", cfg.Debug)
	}
	a.mountConnections(cfg.Connections)

	// A browser page on this machine can reach a loopback port; refuse
	// cross-origin requests so it cannot create or revoke senders.
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusForbidden, "cross-origin request refused")
	}))
	a.guard = cop.Handler(a.router)
	return a
}

// ServeHTTP serves loopback clients that name a loopback host only, then
// routes the request.
func (a *Admin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !fromLoopback(r) {
		a.refused.Warn().Str("remote", r.RemoteAddr).Msg("admin request from a non-loopback address refused")
		writeError(w, http.StatusForbidden, "admin endpoint serves loopback clients only")
		return
	}
	// DNS rebinding: a page on evil.example whose name now resolves to
	// 127.0.0.1 talks to this port from the browser, with Host and Origin
	// both evil.example, so the cross-origin check sees a same-origin
	// request. Only the Host tells it apart from the operator's own tools.
	if !loopbackHost(r.Host) {
		a.refused.Warn().Str("host", r.Host).Str("remote", r.RemoteAddr).Msg("admin request for a non-loopback host refused (DNS rebinding?)")
		writeError(w, http.StatusMisdirectedRequest, "admin endpoint answers only Host localhost or a loopback IP address")
		return
	}
	a.guard.ServeHTTP(w, r)
}

// loopbackHost reports whether a Host header value, with or without a port,
// is "localhost" or a loopback IP address (IPv6 in brackets). An empty Host
// is refused too: every HTTP/1.1 client sends one.
func loopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	} else if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1]
	} else if strings.Contains(host, ":") {
		return false // a bare IPv6 address or garbage: browsers bracket IPv6
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// fromLoopback reports whether the request's peer is a loopback address.
func fromLoopback(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// SenderJSON is a sender as the admin endpoints show it.
type SenderJSON struct {
	SenderID    string    `json:"sender_id"`
	Created     time.Time `json:"created"`
	Revoked     bool      `json:"revoked"`
	GroupCopies bool      `json:"group_copies"` // see PATCH /admin/senders/{id}
}

// CreateSenderRequest is the body of POST /admin/senders. An empty body is
// the same as {}.
type CreateSenderRequest struct {
	// ID is the sender id wanted; empty picks a random 12-digit one.
	ID string `json:"id,omitempty"`
}

// CreateSenderResponse is the answer of POST /admin/senders, and what
// "ccsd sender create" prints.
type CreateSenderResponse struct {
	SenderID string `json:"sender_id"`
	APIKey   string `json:"api_key"`
}

func senderJSON(s auth.Sender) SenderJSON {
	return SenderJSON{SenderID: s.ID, Created: s.Created.UTC(), Revoked: s.Revoked, GroupCopies: s.GroupCopies}
}

func (a *Admin) createSender(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r, DefaultMaxBodyBytes)
	if !ok {
		return
	}
	var req CreateSenderRequest
	if body = bytes.TrimSpace(body); len(body) > 0 {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil || dec.More() {
			writeError(w, http.StatusBadRequest, `body must be empty or {"id": "SENDER_ID"}`)
			return
		}
	}
	s, key, err := a.senders.Create(req.ID)
	switch {
	case errors.Is(err, auth.ErrSenderExists):
		writeError(w, http.StatusConflict, "sender "+req.ID+" already exists")
		return
	case errors.Is(err, auth.ErrInvalidSenderID):
		writeError(w, http.StatusBadRequest, "invalid sender id: use 1 to 64 letters, digits, '.', '_' or '-'")
		return
	case err != nil:
		a.internal(w, err, "create sender")
		return
	}
	a.log.Info().Str("sender_id", s.ID).Msg("sender created")
	noStore(w)
	w.Header().Set("Location", "/admin/senders/"+url.PathEscape(s.ID))
	writeJSON(w, http.StatusCreated, CreateSenderResponse{SenderID: s.ID, APIKey: key})
}

func (a *Admin) listSenders(w http.ResponseWriter, _ *http.Request) {
	list, err := a.senders.List()
	if err != nil {
		a.internal(w, err, "list senders")
		return
	}
	out := make([]SenderJSON, 0, len(list))
	for _, s := range list {
		out = append(out, senderJSON(s))
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *Admin) getSender(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s, err := a.senders.Get(id)
	if errors.Is(err, auth.ErrUnknownSender) {
		writeError(w, http.StatusNotFound, "unknown sender "+id)
		return
	}
	if err != nil {
		a.internal(w, err, "get sender")
		return
	}
	writeJSON(w, http.StatusOK, senderJSON(s))
}

func (a *Admin) revokeSender(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	err := a.senders.Revoke(id)
	if errors.Is(err, auth.ErrUnknownSender) {
		writeError(w, http.StatusNotFound, "unknown sender "+id)
		return
	}
	if err != nil {
		a.internal(w, err, "revoke sender")
		return
	}
	a.log.Info().Str("sender_id", id).Msg("sender revoked")
	if a.revoked != nil {
		a.revoked(id)
	}
	s, err := a.senders.Get(id)
	if err != nil {
		a.internal(w, err, "get revoked sender")
		return
	}
	writeJSON(w, http.StatusOK, senderJSON(s))
}

func (a *Admin) healthz(w http.ResponseWriter, r *http.Request) {
	if a.health != nil {
		if err := a.health(r.Context()); err != nil {
			a.log.Warn().Err(err).Msg("health check failed")
			writeError(w, http.StatusServiceUnavailable, "unhealthy: "+err.Error())
			return
		}
	}
	writeJSON(w, http.StatusOK, Health{Status: "ok", Instance: a.inst})
}

// Health is the answer of GET /healthz.
type Health struct {
	Status   string `json:"status"`
	Instance string `json:"instance,omitempty"`
}

// Reasons GET /readyz gives for not being ready.
const (
	// ReasonStarting: the listeners are not all serving yet.
	ReasonStarting = "starting"
	// ReasonDraining: the server is shutting down.
	ReasonDraining = "draining"
	// ReasonStore: the store's last commit failed (a full disk, an I/O
	// error), so writes are refused until one succeeds again.
	ReasonStore = "store"
)

// NotReady is the error a readiness check returns: Reason is the word
// GET /readyz reports (one of the Reason constants), Err the detail, if any.
type NotReady struct {
	Reason string
	Err    error
}

// Error says "not ready: REASON", with the detail after it if there is one.
func (e *NotReady) Error() string {
	if e.Err == nil {
		return "not ready: " + e.Reason
	}
	return "not ready: " + e.Reason + ": " + e.Err.Error()
}

// Unwrap returns the detail.
func (e *NotReady) Unwrap() error { return e.Err }

// Readiness is the answer of GET /readyz.
type Readiness struct {
	Status string `json:"status"`           // "ready" or "not ready"
	Reason string `json:"reason,omitempty"` // why not: a Reason constant
	Error  string `json:"error,omitempty"`  // the detail, as other admin errors
}

// readyz is readiness, apart from /healthz's liveness: it says whether
// this server can take traffic now, so a balancer or an operator's script
// can wait for it, or route around it, without restarting it.
func (a *Admin) readyz(w http.ResponseWriter, r *http.Request) {
	if a.ready != nil {
		if err := a.ready(r.Context()); err != nil {
			reason := "error"
			var nr *NotReady
			if errors.As(err, &nr) {
				reason = nr.Reason
			}
			a.log.Debug().Err(err).Str("reason", reason).Msg("not ready")
			writeJSON(w, http.StatusServiceUnavailable, Readiness{Status: "not ready", Reason: reason, Error: err.Error()})
			return
		}
	}
	writeJSON(w, http.StatusOK, Readiness{Status: "ready"})
}

// internal answers 500 and logs the cause, which the client does not see.
func (a *Admin) internal(w http.ResponseWriter, err error, what string) {
	a.log.Error().Err(err).Msg("admin: " + what)
	writeError(w, http.StatusInternalServerError, "internal error")
}
