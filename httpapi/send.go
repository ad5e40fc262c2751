package httpapi

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/ccsd/ccsd/ccs"
	"github.com/ccsd/ccsd/fanout"
	"github.com/ccsd/ccsd/internal/limit"
)

// MaxRegistrationIDs bounds registration_ids in one legacy send (spec §11).
const MaxRegistrationIDs = 1000

// Router routes one validated downstream message; *fanout.Router
// implements it.
type Router interface {
	Send(ctx context.Context, sender string, m *ccs.Downstream) fanout.SendResult
	// SendTopic accepts a message to "/topics/NAME" once its fan-out is
	// durable and returns its numeric message id.
	SendTopic(ctx context.Context, sender string, m *ccs.Downstream) (uint64, *ccs.Nack)
}

// SendHandler serves the legacy GCM HTTP send endpoint, POST /gcm/send
// (and its FCM-era path /fcm/send): JSON or plain-text requests, per
// recipient results, device-group answers (spec §9.1, §11).
type SendHandler struct {
	router  Router
	keys    keyChecker
	maxBody int64
	prefix  string // random per process: message ids never repeat across restarts
	seq     atomic.Uint64
}

// NewSendHandler returns the /gcm/send handler. logins throttles failed
// API keys (nil: no throttling).
func NewSendHandler(router Router, auth KeyAuthenticator, logins LoginLimiter, log zerolog.Logger) *SendHandler {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return &SendHandler{router: router, keys: newKeyChecker(auth, logins, log), maxBody: DefaultMaxBodyBytes + MaxRegistrationIDs*256, prefix: hex.EncodeToString(b[:])}
}

// Mount registers the handler on the public API at both paths.
func (h *SendHandler) Mount(a *API) {
	a.Handle("POST /gcm/send", h)
	a.Handle("POST /fcm/send", h)
}

// messageID makes a GCM-looking message id: "0:<ms>%<process><seq>".
func (h *SendHandler) messageID() string {
	return "0:" + strconv.FormatInt(time.Now().UnixMilli(), 10) + "%" + h.prefix + strconv.FormatUint(h.seq.Add(1), 16)
}

// legacyResult is one entry of "results".
type legacyResult struct {
	MessageID string `json:"message_id,omitempty"`
	Error     string `json:"error,omitempty"`
}

type multicastResponse struct {
	MulticastID  int64          `json:"multicast_id"`
	Success      int            `json:"success"`
	Failure      int            `json:"failure"`
	CanonicalIDs int            `json:"canonical_ids"`
	Results      []legacyResult `json:"results"`
}

type groupResponse struct {
	Success               int      `json:"success"`
	Failure               int      `json:"failure"`
	FailedRegistrationIDs []string `json:"failed_registration_ids,omitempty"`
}

// ServeHTTP handles one send request.
func (h *SendHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	sender, ok := h.keys.authenticate(w, r, false)
	if !ok {
		return
	}
	body, ok := readBody(w, r, h.maxBody)
	if !ok {
		return
	}
	ct := r.Header.Get("Content-Type")
	if strings.HasPrefix(strings.ToLower(strings.TrimSpace(ct)), "application/json") {
		h.sendJSON(w, r.Context(), sender, body)
		return
	}
	// Missing or form Content-Type means plain text (spec §11).
	h.sendPlain(w, r.Context(), sender, body)
}

// sendJSON handles the JSON form: registration_ids (multicast), or "to" /
// "notification_key" (one registration or a device group). The body is
// decoded and validated once; each recipient gets a copy of the typed
// message that differs only in its target and message id.
func (h *SendHandler) sendJSON(w http.ResponseWriter, ctx context.Context, sender string, body []byte) {
	req, regIDs, to, msg := parseSendJSON(body)
	if msg != "" {
		writeError(w, http.StatusBadRequest, msg)
		return
	}
	if to != "" && len(regIDs) > 0 {
		writeError(w, http.StatusBadRequest, `give either "to" or "registration_ids", not both`)
		return
	}
	mc := req.Multicast()
	if mc.HasCondition() {
		if to != "" || len(regIDs) > 0 {
			writeError(w, http.StatusBadRequest, `give either "condition" or a target ("to", "registration_ids"), not both`)
			return
		}
		h.sendTopic(w, ctx, sender, mc, "")
		return
	}
	if _, topic := ccs.TopicOf(to); topic {
		h.sendTopic(w, ctx, sender, mc, to)
		return
	}
	if to != "" {
		regIDs = []string{to}
	}
	if len(regIDs) == 0 {
		writeError(w, http.StatusBadRequest, "MissingRegistration: no registration_ids or to")
		return
	}
	results, ids := h.sendEach(ctx, sender, mc, regIDs)
	writeSendResults(w, to != "", results, ids)
}

// sendEach routes the message once per registration id, with a fresh
// message id each, at most 64 at a time (concurrent sends share commits).
// A recipient the message cannot go to (its target, or a field, is
// refused) gets its nack without being routed.
func (h *SendHandler) sendEach(ctx context.Context, sender string, mc *ccs.Multicast, regIDs []string) (results []fanout.SendResult, ids []string) {
	results = make([]fanout.SendResult, len(regIDs))
	ids = make([]string, len(regIDs))
	msgs := make([]ccs.Downstream, len(regIDs)) // one allocation for all copies
	var wg sync.WaitGroup
	defer wg.Wait()
	sem := make(chan struct{}, 64)
	for i, to := range regIDs {
		ids[i] = h.messageID()
		if n := mc.For(to, ids[i], &msgs[i]); n != nil {
			results[i] = fanout.SendResult{Nack: n}
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer func() { <-sem; wg.Done() }()
			results[i] = h.router.Send(ctx, sender, &msgs[i])
		}(i)
	}
	return results, ids
}

// topicResponse is the legacy answer to a topic send: a numeric id.
type topicResponse struct {
	MessageID uint64 `json:"message_id"`
}

// sendTopic answers a send to "/topics/NAME" (to) or to the body's
// condition (to == ""): {"message_id": N} once the fan-out is durable, or
// {"error": NAME} (400 for a refusal with no legacy name, such as a bad
// topic name or condition).
func (h *SendHandler) sendTopic(w http.ResponseWriter, ctx context.Context, sender string, mc *ccs.Multicast, to string) {
	var m ccs.Downstream
	var n *ccs.Nack
	if to == "" {
		n = mc.ForCondition(h.messageID(), &m)
	} else {
		n = mc.For(to, h.messageID(), &m)
	}
	var id uint64
	if n == nil {
		id, n = h.router.SendTopic(ctx, sender, &m)
	}
	if n == nil {
		writeJSON(w, http.StatusOK, topicResponse{MessageID: id})
		return
	}
	code, ok := n.HTTPError()
	if !ok {
		writeError(w, http.StatusBadRequest, n.Description)
		return
	}
	writeError(w, http.StatusOK, code)
}

// writeSendResults answers a JSON send: 400 when a field's type is wrong
// (that concerns the whole request, spec §11); for a single target that is
// a device group, the group answer (or 503 when no member could be
// reached, spec §9.1); else the per-recipient results.
func writeSendResults(w http.ResponseWriter, single bool, results []fanout.SendResult, ids []string) {
	for _, res := range results {
		if res.Nack != nil {
			if _, ok := res.Nack.HTTPError(); !ok {
				writeError(w, http.StatusBadRequest, res.Nack.Description)
				return
			}
		}
	}
	if res := results[0]; single && res.Group && res.Nack == nil {
		if res.Success == 0 {
			// Total failure of a device-group send: no body.
			w.Header().Set("Retry-After", "10")
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		writeJSON(w, http.StatusOK, groupResponse{Success: res.Success, Failure: res.Failure, FailedRegistrationIDs: res.FailedRegistrationIDs})
		return
	}
	resp := multicastResponse{MulticastID: time.Now().UnixNano(), Results: make([]legacyResult, len(results))}
	for i, res := range results {
		if res.Nack != nil {
			code, _ := res.Nack.HTTPError()
			resp.Results[i].Error = code
			resp.Failure++
			continue
		}
		resp.Results[i].MessageID = ids[i]
		resp.Success++
	}
	writeJSON(w, http.StatusOK, resp)
}

// parseSendJSON reads the JSON form's body: the message (package ccs's
// Stanza), the registration_ids and the single target ("to" or
// "notification_key"). A non-empty msg is the 400 answer. The body is first
// put in compact form with HTML characters escaped, as re-encoding it with
// encoding/json did before ccsd decoded each recipient's copy: payload sizes
// are counted on the same text as they always were. A repeated field is
// refused before anything else is read. Targets are checked here, before
// any is sent, so that one bad id cannot get a request half-sent and then
// refused.
func parseSendJSON(body []byte) (req *ccs.Stanza, regIDs []string, to, msg string) {
	body, ok := compactBody(body)
	if !ok {
		return nil, nil, "", "the request body is not a JSON object"
	}
	if k, dup := ccs.DuplicateKey(body); dup {
		return nil, nil, "", "the request body repeats the field " + strconv.Quote(clip(k))
	}
	if req, ok = ccs.DecodeRequest(body); !ok {
		return nil, nil, "", "the request body is not a JSON object"
	}
	if raw := req.RegistrationIDs; len(raw) > 0 {
		if err := json.Unmarshal(raw, &regIDs); err != nil {
			return nil, nil, "", `field "registration_ids" must be an array of strings`
		}
		if len(regIDs) > MaxRegistrationIDs {
			return nil, nil, "", "too many registration_ids: at most 1000"
		}
		for i, id := range regIDs {
			if len(id) > limit.MaxIDBytes {
				return nil, nil, "", "registration_ids[" + strconv.Itoa(i) + "] is longer than " + strconv.Itoa(limit.MaxIDBytes) + " bytes"
			}
			if _, topic := ccs.TopicOf(id); topic {
				return nil, nil, "", "registration_ids[" + strconv.Itoa(i) + `] names a topic: send to a topic with "to"`
			}
		}
	}
	if to, msg = singleTarget("to", req.To); msg == "" && to == "" {
		to, msg = singleTarget("notification_key", req.NotificationKey)
	}
	if msg != "" {
		return nil, nil, "", msg
	}
	return req, regIDs, to, ""
}

// singleTarget reads the single-target field f ("" when absent or null).
func singleTarget(f string, raw json.RawMessage) (to, msg string) {
	if len(raw) == 0 {
		return "", ""
	}
	if err := json.Unmarshal(raw, &to); err != nil {
		return "", `field "` + f + `" must be a string`
	}
	if ccs.TargetTooLong(to) {
		return "", `field "` + f + `" is too long`
	}
	return to, ""
}

// compactBody returns body in compact form with <, >, & (and U+2028,
// U+2029) escaped in strings, which is what encoding/json writes; ok is
// false when body is not valid JSON.
func compactBody(body []byte) ([]byte, bool) {
	var c, e bytes.Buffer
	c.Grow(len(body))
	if json.Compact(&c, body) != nil {
		return nil, false
	}
	e.Grow(c.Len())
	json.HTMLEscape(&e, c.Bytes())
	return e.Bytes(), true
}

// clip shortens client text quoted in an error answer.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// sendPlain handles the plain-text form: one registration_id, options as
// form fields and data as data.<key> fields; the answer is "id=..." or
// "Error=...", and Unavailable is HTTP 500 instead (spec §11).
func (h *SendHandler) sendPlain(w http.ResponseWriter, ctx context.Context, sender string, body []byte) {
	form, err := url.ParseQuery(string(body))
	if err != nil {
		writeText(w, http.StatusBadRequest, "Error=InvalidRequest\n")
		return
	}
	reg := form.Get("registration_id")
	if reg == "" {
		writeText(w, http.StatusOK, "Error=MissingRegistration\n")
		return
	}
	id := h.messageID()
	msg := map[string]any{"to": reg, "message_id": id}
	data := map[string]string{}
	for k, v := range form {
		switch {
		case strings.HasPrefix(k, "data."):
			data[strings.TrimPrefix(k, "data.")] = v[0]
		case k == "collapse_key" || k == "restricted_package_name":
			msg[k] = v[0]
		case k == "time_to_live":
			msg[k] = v[0] // digits, validated by fanout
		case k == "delay_while_idle" || k == "dry_run":
			msg[k] = v[0] == "1" || v[0] == "true"
		}
	}
	if len(data) > 0 {
		msg["data"] = data
	}
	res := h.sendOne(ctx, sender, msg)
	switch {
	case res.Nack == nil:
		writeText(w, http.StatusOK, "id="+id+"\n")
	default:
		code, ok := res.Nack.HTTPError()
		switch {
		case !ok:
			writeText(w, http.StatusBadRequest, "Error=InvalidRequest\n")
		case code == "Unavailable" || code == "InternalServerError":
			w.Header().Set("Retry-After", "10")
			writeText(w, http.StatusInternalServerError, "Error="+code+"\n")
		default:
			writeText(w, http.StatusOK, "Error="+code+"\n")
		}
	}
}

// sendOne routes the plain-text form's one message, built as the JSON
// stanza it stands for and decoded and validated once by package ccs.
func (h *SendHandler) sendOne(ctx context.Context, sender string, msg map[string]any) fanout.SendResult {
	payload, _ := json.Marshal(msg)
	st, serr := ccs.Decode(payload)
	if serr != nil { // not reached: msg has a message_id
		return fanout.SendResult{Nack: ccs.InvalidJSON("JSON_PARSING_ERROR", serr.Text)}
	}
	m, n := st.Downstream()
	if n != nil {
		return fanout.SendResult{Nack: n}
	}
	return h.router.Send(ctx, sender, m)
}
