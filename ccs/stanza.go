package ccs

import (
	"bytes"
	"encoding/json"
)

// DefaultUpstreamTTL is the time_to_live of a device upstream message that
// sets none: one day, the device-side maximum of the later GCM docs.
const DefaultUpstreamTTL = 86400

// Decode parses one JSON stanza of either side and reads its message_id.
// A StanzaError means there is no message a nack could answer: the stanza
// is to be bounced with its Text.
func Decode(payload []byte) (*Stanza, *StanzaError) {
	s, _, serr := decodeEnvelope(payload)
	return s, serr
}

// DecodeRequest parses the JSON body of a legacy HTTP send, which has no
// message_id (the server assigns one per recipient). ok is false when body
// is not a JSON object. A repeated member is recorded, as by Decode, and
// refused by Downstream and Multicast; the HTTP layer looks for repeats
// first (DuplicateKey) to answer them with a 400 of its own.
func DecodeRequest(body []byte) (s *Stanza, ok bool) {
	if !json.Valid(body) {
		return nil, false
	}
	r, isObj := newObjectReader(bytes.Clone(body))
	if !isObj {
		return nil, false
	}
	s = &Stanza{}
	if s.fill(&r) != nil {
		return nil, false
	}
	return s, true
}

// Type is the stanza's message_type: "" for a message, or "ack", "nack",
// "control", ...; a non-string message_type is nacked.
func (env *Stanza) Type() (string, *Nack) { return optString(env.MessageType, "message_type") }

// Recipient is the stanza's "to" when it is a JSON string, else "". It is
// for answers (the "from" of a nack) and for choosing a path, not for
// validation.
func (env *Stanza) Recipient() string {
	to, _ := jsonString(env.To)
	return to
}

// CheckedTo is the stanza's "to", validated as an optional string field
// ("" when absent).
func (env *Stanza) CheckedTo() (string, *Nack) { return optString(env.To, "to") }

// CheckedCategory is the stanza's "category", validated as an optional
// string field ("" when absent).
func (env *Stanza) CheckedCategory() (string, *Nack) { return optString(env.Category, "category") }

// Downstream validates the stanza as a downstream message (spec §3).
func (env *Stanza) Downstream() (*Downstream, *Nack) { return validateDownstream(env, env.ID) }

// Upstream is a validated device upstream message (spec §5.1): what ccsd
// needs to route it to an app server, before the store is asked anything.
type Upstream struct {
	To       string // SENDER_ID@gcm.googleapis.com, not yet parsed
	Category string // the sending app
	TTL      int64
	Data     json.RawMessage // a compact JSON object or nil
}

// Upstream validates the stanza as a device's upstream message.
func (env *Stanza) Upstream() (*Upstream, *Nack) {
	if n := env.check(env.ID); n != nil {
		return nil, n
	}
	u := &Upstream{}
	var n *Nack
	if u.To, n = optString(env.To, "to"); n != nil {
		return nil, n
	}
	if u.To == "" {
		return nil, InvalidJSON("MISSING_REGISTRATION", "Missing Required Field: to")
	}
	if u.Category, n = optString(env.Category, "category"); n != nil {
		return nil, n
	}
	if u.Category == "" {
		return nil, InvalidJSON("INVALID_PARAMETERS", "Missing Required Field: category")
	}
	if u.TTL, n = optTTL(env.TimeToLive, DefaultUpstreamTTL); n != nil {
		return nil, n
	}
	size := 0
	if u.Data, size, n = validateData(env.Data); n != nil {
		return nil, n
	}
	if size > MaxDataSize {
		return nil, InvalidJSON("MESSAGE_TOO_BIG", "the data payload is larger than the 4096 bytes allowed")
	}
	return u, nil
}

// Multicast is one downstream message validated once for many targets,
// as a legacy HTTP send to registration_ids is: every field but the target
// and the message_id is checked once, and For makes each recipient's copy.
type Multicast struct {
	m          Downstream
	head, body *Nack // the refusals before and after the target check
	hasCond    bool  // the body has a "condition"
	cond       string
	condN      *Nack // the condition's refusal
}

// Multicast validates every field of the stanza but "to" and message_id.
func (env *Stanza) Multicast() *Multicast {
	t := &Multicast{head: env.head("")}
	if t.head == nil && !isAbsent(env.Condition) {
		t.hasCond = true
		t.cond, t.condN = readCondition(env.Condition)
	}
	if t.head == nil {
		t.body = env.body(&t.m)
	}
	return t
}

// For fills into the message for target to with message id id, or returns
// the nack that recipient gets: the same as validating a stanza with that
// "to" and message_id, field after field in the same order. id must be
// within limit.MaxIDBytes; to has been bounded by the caller.
func (t *Multicast) For(to, id string, into *Downstream) *Nack {
	if t.head != nil {
		return t.head
	}
	if t.hasCond {
		return bothTargets()
	}
	if n := CheckTo(to); n != nil {
		return n
	}
	if t.body != nil {
		return t.body
	}
	*into = t.m
	into.To, into.MessageID = to, id
	return nil
}

// HasCondition reports whether the body is addressed by "condition".
func (t *Multicast) HasCondition() bool { return t.hasCond }

// ForCondition fills into the message addressed by the body's condition,
// with message id id, or returns its refusal, as validating the stanza
// does.
func (t *Multicast) ForCondition(id string, into *Downstream) *Nack {
	switch {
	case t.head != nil:
		return t.head
	case t.condN != nil:
		return t.condN
	case t.body != nil:
		return t.body
	}
	*into = t.m
	into.Condition, into.MessageID = t.cond, id
	return nil
}
