package ccs

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/ccsd/ccsd/internal/limit"
)

// Protocol limits (spec §3).
const (
	// MaxTTL is the largest time_to_live, in seconds: four weeks.
	MaxTTL = 2419200
	// DefaultTTL is the time_to_live of a message that sets none.
	DefaultTTL = MaxTTL
	// MaxDataSize bounds the data payload: keys plus values, in bytes,
	// counted as CCS counts them: decoded (an escape such as \u0041 is the
	// one byte it stands for). A notification object counts against the
	// same budget, at the length of its JSON text.
	MaxDataSize = 4096
	// MaxDataJSONBytes bounds the JSON text of a data object as ccsd stores
	// and delivers it: rewritten in compact form with only the escapes JSON
	// requires. Within MaxDataSize decoded bytes this is reached only by
	// characters that must stay escaped (a control character becomes six
	// bytes), so it stops a payload that counts 4096 but weighs 24 KB on
	// disk and on the wire. Text an app sends for real (JSON inside a value
	// doubles its quotes) stays far below it.
	MaxDataJSONBytes = 4 * MaxDataSize
)

// The id and name fields of a message are bounded by limit.MaxIDBytes,
// shared with the HTTP APIs (see internal/limit/ids.go).

// Stanza is one decoded CCS JSON message of either side (or the body of a
// legacy HTTP send): every top-level field ccsd reads, raw. Fields stay raw
// until validated so that each type error can be reported against its
// field, the way CCS did. Decode makes one; Downstream, Upstream and the
// Checked accessors validate it.
type Stanza struct {
	MessageType              json.RawMessage `json:"message_type"`
	MessageID                json.RawMessage `json:"message_id"`
	To                       json.RawMessage `json:"to"`
	Condition                json.RawMessage `json:"condition"`
	Category                 json.RawMessage `json:"category"`
	CollapseKey              json.RawMessage `json:"collapse_key"`
	Priority                 json.RawMessage `json:"priority"`
	TimeToLive               json.RawMessage `json:"time_to_live"`
	DelayWhileIdle           json.RawMessage `json:"delay_while_idle"`
	DeliveryReceiptRequested json.RawMessage `json:"delivery_receipt_requested"`
	DryRun                   json.RawMessage `json:"dry_run"`
	ContentAvailable         json.RawMessage `json:"content_available"`
	MutableContent           json.RawMessage `json:"mutable_content"`
	RestrictedPackageName    json.RawMessage `json:"restricted_package_name"`
	Data                     json.RawMessage `json:"data"`
	Notification             json.RawMessage `json:"notification"`
	// RegistrationIDs and NotificationKey are legacy HTTP targets (spec
	// §11), read by the HTTP send only.
	RegistrationIDs json.RawMessage `json:"registration_ids"`
	NotificationKey json.RawMessage `json:"notification_key"`
	// ControlType is a device's control stanza's (DOZE, AWAKE: Control).
	ControlType json.RawMessage `json:"control_type"`

	// ID is the decoded message_id; "" for a legacy HTTP body.
	ID string `json:"-"`

	// dup is the first top-level member name given twice, "" if none.
	// decodeEnvelope bounces a repeated message_id or message_type (the
	// message cannot be identified); any other repeat is refused by
	// check, with a nack.
	dup string
}

// field returns the envelope field a top-level member name fills, nil for
// a name ccsd does not read. Names match exactly, as in CCS.
func (env *Stanza) field(name string) *json.RawMessage {
	switch name {
	case "message_type":
		return &env.MessageType
	case "message_id":
		return &env.MessageID
	case "to":
		return &env.To
	case "condition":
		return &env.Condition
	case "category":
		return &env.Category
	case "collapse_key":
		return &env.CollapseKey
	case "priority":
		return &env.Priority
	case "time_to_live":
		return &env.TimeToLive
	case "delay_while_idle":
		return &env.DelayWhileIdle
	case "delivery_receipt_requested":
		return &env.DeliveryReceiptRequested
	case "dry_run":
		return &env.DryRun
	case "content_available":
		return &env.ContentAvailable
	case "mutable_content":
		return &env.MutableContent
	case "restricted_package_name":
		return &env.RestrictedPackageName
	case "data":
		return &env.Data
	case "notification":
		return &env.Notification
	case "registration_ids":
		return &env.RegistrationIDs
	case "notification_key":
		return &env.NotificationKey
	case "control_type":
		return &env.ControlType
	}
	return nil
}

// check refuses a message (downstream or upstream) that decodeEnvelope let
// through but that no message may be: one with a repeated top-level member,
// or a message_id longer than limit.MaxIDBytes. Acks skip it: they store
// nothing and are matched by their id only.
func (env *Stanza) check(id string) *Nack {
	if env.dup != "" {
		return InvalidJSON("JSON_PARSING_ERROR", "Duplicate field: "+clip(env.dup))
	}
	if len(id) > limit.MaxIDBytes {
		return tooLong("message_id")
	}
	return nil
}

func tooLong(field string) *Nack {
	return InvalidJSON("INVALID_PARAMETERS", "Field \""+field+"\" is longer than "+strconv.Itoa(limit.MaxIDBytes)+" bytes")
}

// clip shortens client text quoted in an error description: the answer
// names the culprit without echoing a whole payload.
func clip(s string) string {
	const max = 64
	if len(s) <= max {
		return strconv.Quote(s)
	}
	return strconv.Quote(s[:max]) + "..."
}

// StanzaError is input so broken that no nack can answer it (no usable
// message_id): the stanza is bounced with an XMPP stanza error instead.
// Text is the stanza error's text, in CCS's own form.
type StanzaError struct{ Text string }

// Error returns the text.
func (e *StanzaError) Error() string { return e.Text }

func parsingError(text string) *StanzaError {
	// The trailing newline is part of the text in CCS's own sample.
	return &StanzaError{Text: "InvalidJson: JSON_PARSING_ERROR : " + text + "\n"}
}

// decodeEnvelope parses one JSON object and extracts its message_id. Any
// failure is a stanza error: without a message_id there is nothing a nack
// could be correlated with. Members are read one by one, not through
// encoding/json, so that a repeated name is seen (see jsonr.go).
func decodeEnvelope(payload []byte) (*Stanza, string, *StanzaError) {
	if !json.Valid(payload) {
		// Decoded again only for encoding/json's description of the fault.
		err := json.Unmarshal(payload, new(Stanza))
		if err == nil {
			err = errors.New("the message is not valid JSON")
		}
		return nil, "", parsingError(jsonErrorText(err))
	}
	// The fields keep slices of the payload: a private copy, so that they
	// stay valid whatever the caller does with its buffer afterwards.
	payload = bytes.Clone(payload)
	r, ok := newObjectReader(payload)
	if !ok {
		if bytes.Equal(bytes.TrimSpace(payload), []byte("null")) {
			return nil, "", parsingError("Missing Required Field: message_id")
		}
		return nil, "", parsingError("the message must be a JSON object")
	}
	env := &Stanza{}
	if serr := env.fill(&r); serr != nil {
		return nil, "", serr
	}
	if isAbsent(env.MessageID) {
		return nil, "", parsingError("Missing Required Field: message_id")
	}
	id, ok := jsonString(env.MessageID)
	if !ok {
		return nil, "", parsingError(`Field "message_id" must be a JSON string`)
	}
	if id == "" {
		return nil, "", parsingError("Empty Required Field: message_id")
	}
	env.ID = id
	return env, id, nil
}

// fill sets the envelope's fields from the object's members and records
// the first repeated name. A repeated message_id or message_type leaves the
// message without one meaning: that is a stanza error.
func (env *Stanza) fill(r *objectReader) *StanzaError {
	var others keySet // names ccsd does not read, for repeats among them
	for key, val, more := r.next(); more; key, val, more = r.next() {
		name, _ := jsonString(key)
		f := env.field(name)
		switch {
		case f == nil && others.add(name):
			continue
		case f != nil && *f == nil:
			*f = val
			continue
		case name == "message_id" || name == "message_type":
			return parsingError("Duplicate field: " + name)
		}
		if env.dup == "" {
			env.dup = name
		}
	}
	if r.err {
		return parsingError("the message must be a JSON object")
	}
	return nil
}

// jsonErrorText keeps encoding/json's message but not its Go type names.
func jsonErrorText(err error) string {
	var ute *json.UnmarshalTypeError
	if errors.As(err, &ute) {
		if ute.Field == "" {
			return "the message must be a JSON object"
		}
		return "Field " + strconv.Quote(ute.Field) + " has the wrong JSON type"
	}
	return err.Error()
}

func isAbsent(raw json.RawMessage) bool {
	return len(raw) == 0 || bytes.Equal(raw, []byte("null"))
}

// jsonString decodes raw if it is a JSON string.
func jsonString(raw json.RawMessage) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	// Fast path: no escapes.
	if bytes.IndexByte(raw[1:len(raw)-1], '\\') < 0 {
		return string(raw[1 : len(raw)-1]), true
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

func typeError(field, want string, raw json.RawMessage) *Nack {
	return InvalidJSON("JSON_TYPE_ERROR", "Field \""+field+"\" must be a JSON "+want+": "+string(raw))
}

func optString(raw json.RawMessage, field string) (string, *Nack) {
	if isAbsent(raw) {
		return "", nil
	}
	s, ok := jsonString(raw)
	if !ok {
		return "", typeError(field, "java.lang.String", raw)
	}
	// Every string field ccsd reads is an id, a name or a keyword: none
	// has a reason to be long (see limit.MaxIDBytes).
	if len(s) > limit.MaxIDBytes {
		return "", tooLong(field)
	}
	return s, nil
}

func optBool(raw json.RawMessage, field string) (bool, *Nack) {
	switch {
	case isAbsent(raw):
		return false, nil
	case bytes.Equal(raw, []byte("true")):
		return true, nil
	case bytes.Equal(raw, []byte("false")):
		return false, nil
	}
	return false, typeError(field, "java.lang.Boolean", raw)
}

// optTTL reads time_to_live: a JSON integer, or a string of digits (the
// docs' own examples quote it), in 0..MaxTTL seconds.
func optTTL(raw json.RawMessage, def int64) (int64, *Nack) {
	if isAbsent(raw) {
		return def, nil
	}
	text := string(raw)
	if s, ok := jsonString(raw); ok {
		text = s
	}
	n, err := strconv.ParseInt(text, 10, 64)
	if err != nil {
		if f, ferr := strconv.ParseFloat(text, 64); ferr == nil && raw[0] != '"' {
			return 0, InvalidJSON("INVALID_TTL", "time_to_live must be a whole number of seconds: "+strconv.FormatFloat(f, 'g', -1, 64))
		}
		return 0, typeError("time_to_live", "java.lang.Number", raw)
	}
	if n < 0 || n > MaxTTL {
		return 0, InvalidJSON("INVALID_TTL", "time_to_live must be between 0 and 2419200: "+text)
	}
	return n, nil
}

// Downstream is a validated downstream message: from an app server (or a
// device writing to its group), typed, ready to route.
type Downstream struct {
	MessageID         string
	To                string
	Condition         string // instead of To: a topic condition (ParseCondition)
	CollapseKey       string
	Priority          string
	TTL               int64
	Receipt           bool
	DelayWhileIdle    bool // delay_while_idle: held while the device dozes
	DryRun            bool
	RestrictedPackage string
	Data              json.RawMessage // a JSON object or nil
	Notification      json.RawMessage // a JSON object or nil
	ContentAvailable  json.RawMessage // true/false or nil
	MutableContent    json.RawMessage
}

// validateDownstream checks every field of a downstream message (spec §3).
func validateDownstream(env *Stanza, id string) (*Downstream, *Nack) {
	if n := env.head(id); n != nil {
		return nil, n
	}
	if !isAbsent(env.Condition) {
		return env.conditionMessage(id)
	}
	if isAbsent(env.To) {
		return nil, InvalidJSON("MISSING_REGISTRATION", "Missing Required Field: to")
	}
	to, n := optTarget(env.To)
	if n != nil {
		return nil, n
	}
	if n := CheckTo(to); n != nil {
		return nil, n
	}
	m := &Downstream{MessageID: id, To: to}
	if n := env.body(m); n != nil {
		return nil, n
	}
	return m, nil
}

// head checks what comes before the target: repeats and the message_id.
func (env *Stanza) head(id string) *Nack { return env.check(id) }

// conditionMessage validates a message addressed by "condition" (which
// excludes "to").
func (env *Stanza) conditionMessage(id string) (*Downstream, *Nack) {
	if !isAbsent(env.To) {
		return nil, bothTargets()
	}
	cond, n := readCondition(env.Condition)
	if n != nil {
		return nil, n
	}
	m := &Downstream{MessageID: id, Condition: cond}
	if n := env.body(m); n != nil {
		return nil, n
	}
	return m, nil
}

func bothTargets() *Nack {
	return InvalidJSON("INVALID_PARAMETERS", `give either "to" or "condition", not both`)
}

// readCondition reads and checks "condition" (ParseCondition).
func readCondition(raw json.RawMessage) (string, *Nack) {
	s, ok := jsonString(raw)
	if !ok {
		return "", typeError("condition", "java.lang.String", raw)
	}
	if _, n := ParseCondition(s); n != nil {
		return "", n
	}
	return s, nil
}

// CheckTo validates a downstream target already read as a string: present,
// and, for a topic ("/topics/NAME"), a valid topic name. Its length is
// checked where it is read (TargetTooLong).
func CheckTo(to string) *Nack {
	if to == "" {
		return InvalidJSON("MISSING_REGISTRATION", "Empty Required Field: to")
	}
	if name, ok := TopicOf(to); ok && !ValidTopicName(name) {
		return InvalidJSON("INVALID_PARAMETERS", "Invalid topic name: a topic name matches [a-zA-Z0-9-_.~%]{1,900}")
	}
	return nil
}

// optTarget reads "to": a string bounded as TargetTooLong says.
func optTarget(raw json.RawMessage) (string, *Nack) {
	if isAbsent(raw) {
		return "", nil
	}
	s, ok := jsonString(raw)
	if !ok {
		return "", typeError("to", "java.lang.String", raw)
	}
	if TargetTooLong(s) {
		if name, ok := TopicOf(s); ok {
			return "", InvalidJSON("INVALID_PARAMETERS", "Topic name in \"to\" is "+strconv.Itoa(len(name))+
				" bytes, longer than "+strconv.Itoa(MaxTopicNameBytes))
		}
		return "", tooLong("to")
	}
	return s, nil
}

// body checks the fields after the target and fills them into m.
func (env *Stanza) body(m *Downstream) *Nack {
	var n *Nack
	if m.CollapseKey, n = optString(env.CollapseKey, "collapse_key"); n != nil {
		return n
	}
	if m.Priority, n = optString(env.Priority, "priority"); n != nil {
		return n
	}
	if m.Priority != "" && m.Priority != "normal" && m.Priority != "high" {
		return InvalidJSON("INVALID_PARAMETERS", `priority must be "normal" or "high": `+m.Priority)
	}
	if m.TTL, n = optTTL(env.TimeToLive, DefaultTTL); n != nil {
		return n
	}
	if m.DelayWhileIdle, n = optBool(env.DelayWhileIdle, "delay_while_idle"); n != nil {
		return n
	}
	if m.Receipt, n = optBool(env.DeliveryReceiptRequested, "delivery_receipt_requested"); n != nil {
		return n
	}
	if m.DryRun, n = optBool(env.DryRun, "dry_run"); n != nil {
		return n
	}
	if m.ContentAvailable, n = optFlag(env.ContentAvailable, "content_available"); n != nil {
		return n
	}
	if m.MutableContent, n = optFlag(env.MutableContent, "mutable_content"); n != nil {
		return n
	}
	if m.RestrictedPackage, n = optString(env.RestrictedPackageName, "restricted_package_name"); n != nil {
		return n
	}
	return env.payload(m)
}

// optFlag checks a boolean that is passed on as written: its raw text, nil
// when absent.
func optFlag(raw json.RawMessage, field string) (json.RawMessage, *Nack) {
	if _, n := optBool(raw, field); n != nil {
		return nil, n
	}
	if isAbsent(raw) {
		return nil, nil
	}
	return raw, nil
}

// payload checks data and notification and their size together.
func (env *Stanza) payload(m *Downstream) *Nack {
	var n *Nack
	size := 0
	if m.Data, size, n = validateData(env.Data); n != nil {
		return n
	}
	if !isAbsent(env.Notification) {
		if env.Notification[0] != '{' {
			return typeError("notification", "object", env.Notification)
		}
		if k, dup := DuplicateKey(env.Notification); dup {
			return InvalidJSON("JSON_PARSING_ERROR", "Duplicate key in notification: "+clip(k))
		}
		m.Notification = env.Notification
		size += len(env.Notification)
	}
	if size > MaxDataSize {
		return InvalidJSON("MESSAGE_TOO_BIG", "the data payload is "+strconv.Itoa(size)+" bytes, more than the 4096 allowed")
	}
	return nil
}

// validateData checks the data object: an object whose keys are neither
// reserved nor repeated. It returns the object in compact form with only
// the escapes JSON requires (the input itself when it is already so), and
// the payload size as CCS counts it: keys plus values, a string decoded, any
// other value at the length of its JSON text. A text of the compact form
// over MaxDataJSONBytes is refused here; the caller compares the size with
// MaxDataSize.
func validateData(raw json.RawMessage) (json.RawMessage, int, *Nack) {
	if isAbsent(raw) {
		return nil, 0, nil
	}
	r, ok := newObjectReader(raw)
	if !ok {
		return nil, 0, typeError("data", "object", raw)
	}
	var keys keySet
	size, rewrite := 0, false
	for key, val, more := r.next(); more; key, val, more = r.next() {
		k, _ := jsonString(key)
		if reservedDataKey(k) {
			return nil, 0, InvalidJSON("INVALID_DATA_KEY", "data key is reserved: "+k)
		}
		if !keys.add(k) {
			return nil, 0, InvalidJSON("JSON_PARSING_ERROR", "Duplicate key in data: "+clip(k))
		}
		size += len(k)
		rewrite = rewrite || !compactString(key)
		if s, ok := jsonString(val); ok {
			size += len(s)
			rewrite = rewrite || !compactString(val)
		} else {
			size += len(val)
		}
	}
	if r.err {
		return nil, 0, typeError("data", "object", raw)
	}
	if rewrite || r.spaced {
		raw = compactData(raw)
	}
	if len(raw) > MaxDataJSONBytes {
		return nil, 0, InvalidJSON("MESSAGE_TOO_BIG", "the data payload is "+strconv.Itoa(len(raw))+" bytes of JSON, more than the "+strconv.Itoa(MaxDataJSONBytes)+" allowed: too many characters that need escaping")
	}
	return raw, size, nil
}

// compactString reports whether a raw JSON string is already as
// appendJSONString would write it: no escape, valid UTF-8.
func compactString(raw []byte) bool {
	return bytes.IndexByte(raw, '\\') < 0 && utf8.Valid(raw)
}

// compactData rewrites a data object that validateData accepted: strings
// decoded and written again with the escapes JSON requires only, no
// whitespace between members. Other values keep their text, which the size
// count already charged in full.
func compactData(raw []byte) []byte {
	o := newObject(make([]byte, 0, len(raw)))
	r, _ := newObjectReader(raw)
	for key, val, more := r.next(); more; key, val, more = r.next() {
		k, _ := jsonString(key)
		if s, ok := jsonString(val); ok {
			o.str(k, s)
		} else {
			o.raw(k, val)
		}
	}
	return o.done()
}

// reservedDataKey reports the data keys CCS refuses (spec §3): "from", and
// anything starting with "google" or "gcm", which the device library uses
// for its own fields. message_type is refused too, since devices dispatch on
// it.
func reservedDataKey(k string) bool {
	return k == "from" || k == "message_type" || strings.HasPrefix(k, "google") || strings.HasPrefix(k, "gcm")
}
