package httpapi

import (
	"crypto/rand"
	"encoding/hex"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/ccsd/ccsd/ccs"
)

// MaxV1Body bounds a v1 send body: a 4096-byte payload, escaped, with
// the android, apns and webpush blocks around it.
const MaxV1Body = 64 << 10

// V1Handler serves FCM HTTP v1's send, POST
// /v1/projects/{project}/messages:send, as firebase-admin calls it:
// "Authorization: Bearer TOKEN" (a token from POST /token, or a
// self-signed service-account JWT), {project} the token's own sender,
// {"message": {...}, "validate_only": bool}. The body is decoded once
// (ccs.DecodeV1) into the typed message the router takes and routed like
// a legacy send: Router.Send for a token, Router.SendTopic for a topic
// or condition. The answer is {"name": "projects/P/messages/ID"}, or
// Google's error shape with an FcmError errorCode (ccs.Nack.V1).
type V1Handler struct {
	router Router
	keys   keyChecker
	prefix string // random per process: message ids never repeat across restarts
	seq    atomic.Uint64
}

// NewV1Handler returns the v1 send handler. logins throttles refused
// tokens (nil: no throttling).
func NewV1Handler(router Router, bearer BearerAuthenticator, logins LoginLimiter, log zerolog.Logger) *V1Handler {
	var b [6]byte
	_, _ = rand.Read(b[:])
	h := &V1Handler{router: router, keys: newKeyChecker(nil, logins, log), prefix: hex.EncodeToString(b[:])}
	h.keys.bearer = bearer
	return h
}

// Mount registers the endpoint on the public API.
func (h *V1Handler) Mount(a *API) {
	a.Handle("POST /v1/projects/{project}/messages:send", h)
}

// messageID makes an FCM-looking message id: "0:<ms>%<process><seq>".
func (h *V1Handler) messageID() string {
	return "0:" + strconv.FormatInt(time.Now().UnixMilli(), 10) + "%" + h.prefix + strconv.FormatUint(h.seq.Add(1), 16)
}

type v1Response struct {
	Name string `json:"name"`
}

// ServeHTTP handles one send.
func (h *V1Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	sender, ok := h.authenticate(w, r)
	if !ok {
		return
	}
	project := r.PathValue("project")
	if project != sender {
		writeV1(w, ccs.V1Error{HTTPStatus: http.StatusForbidden, Status: "PERMISSION_DENIED", ErrorCode: ccs.V1SenderIDMismatch},
			"Permission denied: the credentials are those of project "+clip(sender)+", not of "+clip(project))
		return
	}
	body, err := readAll(w, r, MaxV1Body)
	if err != nil {
		e := ccs.V1Error{HTTPStatus: http.StatusBadRequest, Status: "INVALID_ARGUMENT", ErrorCode: ccs.V1InvalidArgument}
		msg := "cannot read the request body"
		if tooLarge(err) {
			e.HTTPStatus, msg = http.StatusRequestEntityTooLarge, "Request payload size exceeds the limit: "+strconv.Itoa(MaxV1Body)+" bytes"
		}
		writeV1(w, e, msg)
		return
	}
	var m ccs.Downstream
	if n := ccs.DecodeV1(body, h.messageID(), &m); n != nil {
		writeV1Nack(w, n)
		return
	}
	h.send(w, r, sender, &m)
}

// send routes the decoded message and answers.
func (h *V1Handler) send(w http.ResponseWriter, r *http.Request, sender string, m *ccs.Downstream) {
	id := m.MessageID
	if _, topic := ccs.TopicOf(m.To); topic || m.Condition != "" {
		job, n := h.router.SendTopic(r.Context(), sender, m)
		if n != nil {
			writeV1Nack(w, n)
			return
		}
		id = strconv.FormatUint(job, 10)
	} else {
		res := h.router.Send(r.Context(), sender, m)
		if res.Nack == nil && res.Group && res.Success == 0 {
			res.Nack = &ccs.Nack{Code: ccs.CodeDeviceUnregistered, Description: "no member of the device group can receive the message"}
		}
		if res.Nack != nil {
			writeV1Nack(w, res.Nack)
			return
		}
	}
	if m.DryRun {
		id = "fake_message_id" // what FCM answers a validate_only send
	}
	writeJSON(w, http.StatusOK, v1Response{Name: "projects/" + sender + "/messages/" + id})
}

// authenticate checks the Bearer token; false: answered 401 (with
// WWW-Authenticate), 429 or 503, in Google's shape.
func (h *V1Handler) authenticate(w http.ResponseWriter, r *http.Request) (string, bool) {
	token, ok := parseBearer(r.Header.Get("Authorization"))
	res, retry, sender := bearerBad, time.Duration(0), ""
	if ok {
		sender, res, retry = h.keys.checkBearer(r, token)
	}
	switch res {
	case bearerOK:
		return sender, true
	case bearerThrottled:
		setRetryAfter(w, retry)
		writeV1(w, ccs.V1Error{HTTPStatus: http.StatusTooManyRequests, Status: "RESOURCE_EXHAUSTED"}, "too many refused credentials from this address; retry later")
	case bearerUnavailable:
		w.Header().Set("Retry-After", "10")
		writeV1(w, ccs.V1Error{HTTPStatus: http.StatusServiceUnavailable, Status: "UNAVAILABLE", ErrorCode: ccs.V1Unavailable}, "the credentials could not be checked; retry later")
	default:
		w.Header().Set("WWW-Authenticate", `Bearer realm="ccsd"`)
		writeV1(w, ccs.V1Error{HTTPStatus: http.StatusUnauthorized, Status: "UNAUTHENTICATED"},
			"Request had invalid authentication credentials. Expected OAuth 2 access token (from this server's /token) or a service-account JWT.")
	}
	return "", false
}

// v1Detail is an FcmError detail of a v1 error.
type v1Detail struct {
	Type      string `json:"@type"`
	ErrorCode string `json:"errorCode"`
}

type v1ErrorBody struct {
	Error v1Status `json:"error"`
}

type v1Status struct {
	Code    int        `json:"code"`
	Message string     `json:"message"`
	Status  string     `json:"status"`
	Details []v1Detail `json:"details,omitempty"`
}

// fcmErrorType is the @type of FCM's error detail.
const fcmErrorType = "type.googleapis.com/google.firebase.fcm.v1.FcmError"

// writeV1Nack answers a refused message in v1's terms; quota and
// unavailability carry Retry-After, as FCM's do.
func writeV1Nack(w http.ResponseWriter, n *ccs.Nack) {
	e := n.V1()
	switch e.ErrorCode {
	case ccs.V1QuotaExceeded:
		w.Header().Set("Retry-After", "60") // the rates are per minute
	case ccs.V1Unavailable, ccs.V1Internal:
		w.Header().Set("Retry-After", "10")
	}
	writeV1(w, e, v1Message(n))
}

// v1Message is the error message of a nack: FCM's own words where app
// servers written for FCM may log or match them (the token outcomes),
// ccsd's description otherwise.
func v1Message(n *ccs.Nack) string {
	switch {
	case n.Code == ccs.CodeBadRegistration && n.Sub == ccs.SubSenderMismatch:
		return "SenderId mismatch"
	case n.Code == ccs.CodeBadRegistration:
		return "The registration token is not a valid FCM registration token"
	case n.Code == ccs.CodeDeviceUnregistered:
		return "Requested entity was not found."
	}
	return n.Description
}

// writeV1 writes Google's error shape: {"error": {"code", "message",
// "status", "details": [FcmError]}}; no detail when e has no errorCode.
func writeV1(w http.ResponseWriter, e ccs.V1Error, msg string) {
	body := v1ErrorBody{Error: v1Status{Code: e.HTTPStatus, Message: msg, Status: e.Status}}
	if e.ErrorCode != "" {
		body.Error.Details = []v1Detail{{Type: fcmErrorType, ErrorCode: e.ErrorCode}}
	}
	writeJSON(w, e.HTTPStatus, body)
}

// readAll reads the request body, at most limit bytes (an error that
// tooLarge recognises past it).
func readAll(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	return io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
}
