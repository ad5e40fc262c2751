package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/rs/zerolog"

	"github.com/ccsd/ccsd/auth"
	"github.com/ccsd/ccsd/internal/limit"
	"github.com/ccsd/ccsd/topics"
)

// TopicRegistry manages topic subscriptions; *topics.Registry implements
// it. The rules (names, bounds, whose tokens) are its.
type TopicRegistry interface {
	Add(ctx context.Context, sender, topic string, tokens []string) ([]error, error)
	Remove(ctx context.Context, sender, topic string, tokens []string) ([]error, error)
	DeviceSet(ctx context.Context, deviceID, token, topic string, add bool) error
	Info(sender, token string, details bool) (topics.Info, error)
}

// DeviceAuthenticator checks a device's AidLogin credentials;
// *auth.Devices implements it. A wrong one wraps auth.ErrBadCredentials.
type DeviceAuthenticator interface {
	Authenticate(ctx context.Context, user, password string) (deviceID string, err error)
}

// IIDHandler serves the Instance ID API's topic management, as
// firebase-admin and the Android client call it:
//
//	POST   /iid/v1:batchAdd, /iid/v1:batchRemove    {"to", "registration_tokens"}
//	POST   /iid/v1/TOKEN/rel/topics/NAME            subscribe one token
//	DELETE /iid/v1/TOKEN/rel/topics/NAME            unsubscribe one token
//	GET    /iid/info/TOKEN[?details=true]           the token's app, sender, topics
//
// App servers authenticate with "Authorization: key=API_KEY" or, once
// AcceptBearer is called, "Authorization: Bearer TOKEN" (a token from
// POST /token or a self-signed service-account JWT; the header
// "access_token_auth: true" the SDKs add is accepted and ignored). The
// single-token endpoints also take a device's own "Authorization: AidLogin
// ANDROID_ID:SECURITY_TOKEN", for its own tokens only.
type IIDHandler struct {
	reg     TopicRegistry
	keys    keyChecker
	devices DeviceAuthenticator
	logins  LoginLimiter
	log     zerolog.Logger
}

// NewIIDHandler returns the Instance ID handler. logins throttles failed
// API keys and device credentials (nil: no throttling).
func NewIIDHandler(reg TopicRegistry, keys KeyAuthenticator, devices DeviceAuthenticator, logins LoginLimiter, log zerolog.Logger) *IIDHandler {
	h := &IIDHandler{reg: reg, keys: newKeyChecker(keys, logins, log), devices: devices, logins: logins, log: log}
	if h.logins == nil {
		h.logins = noLimit{}
	}
	return h
}

// Mount registers the endpoints on the public API.
func (h *IIDHandler) Mount(a *API) {
	a.Handle("POST /iid/v1:batchAdd", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.batch(w, r, true) }))
	a.Handle("POST /iid/v1:batchRemove", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.batch(w, r, false) }))
	a.Handle("POST /iid/v1/{token}/rel/topics/{topic}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.one(w, r, true) }))
	a.Handle("DELETE /iid/v1/{token}/rel/topics/{topic}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.one(w, r, false) }))
	a.Handle("GET /iid/info/{token}", http.HandlerFunc(h.info))
}

// iidError is the Instance ID API's error body: {"error": "CODE"}.
func iidError(w http.ResponseWriter, status int, code string) {
	writeJSON(w, status, map[string]string{"error": code})
}

// tokenCode is the per-token error code of a batch result.
func tokenCode(err error) string {
	switch {
	case errors.Is(err, topics.ErrNotFound):
		return "NOT_FOUND"
	case errors.Is(err, topics.ErrTooManyTopics):
		return "TOO_MANY_TOPICS"
	case errors.Is(err, topics.ErrInvalidTopic), errors.Is(err, topics.ErrTooManyTokens):
		return "INVALID_ARGUMENT"
	default:
		return "INTERNAL"
	}
}

// caller is who sent an IID request: a sender (API key) or a device.
type caller struct{ sender, device string }

// authenticate reads the Authorization header; allowDevice admits a
// device's AidLogin. When ok is false the answer is written.
func (h *IIDHandler) authenticate(w http.ResponseWriter, r *http.Request, allowDevice bool) (caller, bool) {
	hdr := strings.TrimSpace(r.Header.Get("Authorization"))
	scheme, _, _ := strings.Cut(hdr, " ")
	switch {
	case strings.EqualFold(scheme, "Bearer"):
		token, _ := parseBearer(hdr)
		sender, ok := h.keys.authenticateBearer(w, r, token)
		return caller{sender: sender}, ok
	case strings.EqualFold(scheme, "AidLogin") && allowDevice:
		dev, ok := h.deviceLogin(w, r, hdr)
		return caller{device: dev}, ok
	}
	sender, ok := h.keys.authenticate(w, r, false)
	return caller{sender: sender}, ok
}

// deviceLogin checks a device's AidLogin credentials under the same
// failed-login budget of the address as API keys.
func (h *IIDHandler) deviceLogin(w http.ResponseWriter, r *http.Request, hdr string) (string, bool) {
	user, password, ok := parseAidLogin(hdr)
	if !ok {
		writeError(w, http.StatusUnauthorized, "malformed Authorization: AidLogin ANDROID_ID:SECURITY_TOKEN")
		return "", false
	}
	addr := r.RemoteAddr
	hold, ok := h.logins.Check(addr, "")
	if !ok {
		writeThrottled(w, "", hold)
		return "", false
	}
	wait(r.Context(), hold)
	dev, err := h.devices.Authenticate(r.Context(), user, password)
	switch {
	case errors.Is(err, auth.ErrBadCredentials):
		if retry := h.logins.Failed(addr, ""); retry > 0 {
			writeThrottled(w, "", retry)
			return "", false
		}
		writeError(w, http.StatusUnauthorized, "the device credentials are not valid")
		return "", false
	case err != nil:
		h.logins.Succeeded(addr, "")
		h.log.Error().Err(err).Msg("iid: authenticate device")
		writeUnavailable(w)
		return "", false
	}
	h.logins.Succeeded(addr, "")
	return dev, true
}

type batchRequest struct {
	To     string   `json:"to"`
	Tokens []string `json:"registration_tokens"`
}

type batchResponse struct {
	Results []map[string]string `json:"results"`
}

// maxIIDBody bounds a batch body: 1000 tokens of at most limit.MaxIDBytes
// and a topic.
const maxIIDBody = DefaultMaxBodyBytes + topics.MaxBatch*(limit.MaxIDBytes+8)

// batch serves batchAdd (add) and batchRemove: one result per token, in
// order, {} for done or {"error": CODE}.
func (h *IIDHandler) batch(w http.ResponseWriter, r *http.Request, add bool) {
	c, ok := h.authenticate(w, r, false)
	if !ok {
		return
	}
	body, ok := readBody(w, r, maxIIDBody)
	if !ok {
		return
	}
	var req batchRequest
	if err := json.Unmarshal(body, &req); err != nil {
		iidError(w, http.StatusBadRequest, "INVALID_ARGUMENT")
		return
	}
	for _, t := range req.Tokens {
		if len(t) > limit.MaxIDBytes {
			iidError(w, http.StatusBadRequest, "INVALID_ARGUMENT")
			return
		}
	}
	op := h.reg.Remove
	if add {
		op = h.reg.Add
	}
	errs, err := op(r.Context(), c.sender, req.To, req.Tokens)
	if err != nil {
		h.writeRegistryError(w, err)
		return
	}
	resp := batchResponse{Results: make([]map[string]string, len(errs))}
	for i, e := range errs {
		resp.Results[i] = map[string]string{}
		if e != nil {
			resp.Results[i]["error"] = tokenCode(e)
		}
	}
	writeJSON(w, http.StatusOK, resp)
}

// writeRegistryError answers an error of the whole request.
func (h *IIDHandler) writeRegistryError(w http.ResponseWriter, err error) {
	switch code := tokenCode(err); code {
	case "INTERNAL":
		h.log.Error().Err(err).Msg("iid: topic subscriptions")
		writeUnavailable(w)
	case "NOT_FOUND":
		iidError(w, http.StatusNotFound, code)
	default:
		iidError(w, http.StatusBadRequest, code)
	}
}

// one serves POST (add) and DELETE of /iid/v1/TOKEN/rel/topics/NAME, for
// a sender's token or a device's own.
func (h *IIDHandler) one(w http.ResponseWriter, r *http.Request, add bool) {
	c, ok := h.authenticate(w, r, true)
	if !ok {
		return
	}
	token, topic := r.PathValue("token"), r.PathValue("topic")
	if len(token) > limit.MaxIDBytes {
		iidError(w, http.StatusNotFound, "NOT_FOUND")
		return
	}
	var err error
	if c.device != "" {
		err = h.reg.DeviceSet(r.Context(), c.device, token, topic, add)
	} else {
		op := h.reg.Remove
		if add {
			op = h.reg.Add
		}
		var errs []error
		if errs, err = op(r.Context(), c.sender, topic, []string{token}); err == nil {
			err = errs[0]
		}
	}
	if err != nil {
		h.writeRegistryError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, struct{}{})
}

type infoResponse struct {
	Application      string   `json:"application"`
	AuthorizedEntity string   `json:"authorizedEntity"`
	Platform         string   `json:"platform"`
	Rel              *infoRel `json:"rel,omitempty"`
}

type infoRel struct {
	Topics map[string]infoTopic `json:"topics"`
}

type infoTopic struct {
	AddDate string `json:"addDate"`
}

// info serves GET /iid/info/TOKEN: the token's app and sender, and with
// details=true its topics and the day each was added.
func (h *IIDHandler) info(w http.ResponseWriter, r *http.Request) {
	c, ok := h.authenticate(w, r, false)
	if !ok {
		return
	}
	details := r.URL.Query().Get("details") == "true"
	info, err := h.reg.Info(c.sender, r.PathValue("token"), details)
	if err != nil {
		h.writeRegistryError(w, err)
		return
	}
	resp := infoResponse{Application: info.App, AuthorizedEntity: info.Sender, Platform: "ANDROID"}
	if details && len(info.Topics) > 0 {
		resp.Rel = &infoRel{Topics: make(map[string]infoTopic, len(info.Topics))}
		for _, s := range info.Topics {
			resp.Rel.Topics[s.Topic] = infoTopic{AddDate: topics.AddDate(s.Added)}
		}
	}
	noStore(w)
	writeJSON(w, http.StatusOK, resp)
}
