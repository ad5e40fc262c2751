package fanout

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
)

// Protocol limits (spec §3).
const (
	// MaxTTL is the largest time_to_live, in seconds: four weeks.
	MaxTTL = 2419200
	// DefaultTTL is the time_to_live of a message that sets none.
	DefaultTTL = MaxTTL
	// MaxDataSize bounds the data payload: keys plus values, in bytes.
	MaxDataSize = 4096
)

// envelope is every top-level field ccsd reads from a JSON stanza of either
// side. Fields stay raw until validated so that each type error can be
// reported against its field, the way CCS did.
type envelope struct {
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
}

// stanzaError is input so broken that no nack can answer it (no usable
// message_id): the stanza is bounced with an XMPP stanza error instead.
type stanzaError struct{ text string }

func (e *stanzaError) Error() string { return e.text }

func parsingError(text string) *stanzaError {
	// The trailing newline is part of the text in CCS's own sample.
	return &stanzaError{text: "InvalidJson: JSON_PARSING_ERROR : " + text + "\n"}
}

// decodeEnvelope parses one JSON object and extracts its message_id. Any
// failure is a stanza error: without a message_id there is nothing a nack
// could be correlated with.
func decodeEnvelope(payload []byte) (*envelope, string, *stanzaError) {
	var env envelope
	if err := json.Unmarshal(payload, &env); err != nil {
		return nil, "", parsingError(jsonErrorText(err))
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
	return &env, id, nil
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
	return invalidJSON("JSON_TYPE_ERROR", "Field \""+field+"\" must be a JSON "+want+": "+string(raw))
}

func optString(raw json.RawMessage, field string) (string, *Nack) {
	if isAbsent(raw) {
		return "", nil
	}
	s, ok := jsonString(raw)
	if !ok {
		return "", typeError(field, "java.lang.String", raw)
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
			return 0, invalidJSON("INVALID_TTL", "time_to_live must be a whole number of seconds: "+strconv.FormatFloat(f, 'g', -1, 64))
		}
		return 0, typeError("time_to_live", "java.lang.Number", raw)
	}
	if n < 0 || n > MaxTTL {
		return 0, invalidJSON("INVALID_TTL", "time_to_live must be between 0 and 2419200: "+text)
	}
	return n, nil
}

// downstream is a validated message from an app server.
type downstream struct {
	MessageID         string
	To                string
	CollapseKey       string
	Priority          string
	TTL               int64
	Receipt           bool
	DryRun            bool
	RestrictedPackage string
	Data              json.RawMessage // a JSON object or nil
	Notification      json.RawMessage // a JSON object or nil
	ContentAvailable  json.RawMessage // true/false or nil
	MutableContent    json.RawMessage
}

// validateDownstream checks every field of a downstream message (spec §3).
func validateDownstream(env *envelope, id string) (*downstream, *Nack) {
	m := &downstream{MessageID: id}
	var n *Nack
	if !isAbsent(env.Condition) {
		return nil, invalidJSON("INVALID_PARAMETERS", "condition (topic messaging) is not supported by this server")
	}
	if isAbsent(env.To) {
		return nil, invalidJSON("MISSING_REGISTRATION", "Missing Required Field: to")
	}
	if m.To, n = optString(env.To, "to"); n != nil {
		return nil, n
	}
	if m.To == "" {
		return nil, invalidJSON("MISSING_REGISTRATION", "Empty Required Field: to")
	}
	if strings.HasPrefix(m.To, "/topics/") {
		return nil, invalidJSON("INVALID_PARAMETERS", "topic messaging is not supported by this server")
	}
	if m.CollapseKey, n = optString(env.CollapseKey, "collapse_key"); n != nil {
		return nil, n
	}
	if m.Priority, n = optString(env.Priority, "priority"); n != nil {
		return nil, n
	}
	if m.Priority != "" && m.Priority != "normal" && m.Priority != "high" {
		return nil, invalidJSON("INVALID_PARAMETERS", `priority must be "normal" or "high": `+m.Priority)
	}
	if m.TTL, n = optTTL(env.TimeToLive, DefaultTTL); n != nil {
		return nil, n
	}
	if _, n = optBool(env.DelayWhileIdle, "delay_while_idle"); n != nil {
		return nil, n
	}
	if m.Receipt, n = optBool(env.DeliveryReceiptRequested, "delivery_receipt_requested"); n != nil {
		return nil, n
	}
	if m.DryRun, n = optBool(env.DryRun, "dry_run"); n != nil {
		return nil, n
	}
	if _, n = optBool(env.ContentAvailable, "content_available"); n != nil {
		return nil, n
	}
	if !isAbsent(env.ContentAvailable) {
		m.ContentAvailable = env.ContentAvailable
	}
	if _, n = optBool(env.MutableContent, "mutable_content"); n != nil {
		return nil, n
	}
	if !isAbsent(env.MutableContent) {
		m.MutableContent = env.MutableContent
	}
	if m.RestrictedPackage, n = optString(env.RestrictedPackageName, "restricted_package_name"); n != nil {
		return nil, n
	}
	size := 0
	if m.Data, size, n = validateData(env.Data); n != nil {
		return nil, n
	}
	if !isAbsent(env.Notification) {
		if env.Notification[0] != '{' {
			return nil, typeError("notification", "object", env.Notification)
		}
		m.Notification = env.Notification
		size += len(env.Notification)
	}
	if size > MaxDataSize {
		return nil, invalidJSON("MESSAGE_TOO_BIG", "the data payload is "+strconv.Itoa(size)+" bytes, more than the 4096 allowed")
	}
	return m, nil
}

// validateData checks the data object: an object whose keys are not
// reserved. It returns the payload size as CCS counts it: keys plus values
// (a string value counts its decoded length, another value its JSON text).
func validateData(raw json.RawMessage) (json.RawMessage, int, *Nack) {
	if isAbsent(raw) {
		return nil, 0, nil
	}
	if raw[0] != '{' {
		return nil, 0, typeError("data", "object", raw)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return nil, 0, typeError("data", "object", raw)
	}
	size := 0
	for k, v := range fields {
		if reservedDataKey(k) {
			return nil, 0, invalidJSON("INVALID_DATA_KEY", "data key is reserved: "+k)
		}
		size += len(k)
		if s, ok := jsonString(v); ok {
			size += len(s)
		} else {
			size += len(v)
		}
	}
	return raw, size, nil
}

// reservedDataKey reports the data keys CCS refuses (spec §3): "from", and
// anything starting with "google" or "gcm", which the device library uses
// for its own fields. message_type is refused too, since devices dispatch on
// it.
func reservedDataKey(k string) bool {
	return k == "from" || k == "message_type" || strings.HasPrefix(k, "google") || strings.HasPrefix(k, "gcm")
}
