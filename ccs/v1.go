package ccs

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"

	"github.com/ccsd/ccsd/internal/limit"
)

// FCM HTTP v1 (POST /v1/projects/P/messages:send): the body
// {"message": {...}, "validate_only": bool} is decoded here into the same
// Downstream the CCS decoder makes, under the same limits, so that the
// router never sees where a message came from. Names are read in both
// forms protobuf's JSON mapping accepts (collapse_key and collapseKey). A
// field v1 does not define is refused, as Google's parser does; the apns
// and webpush blocks are accepted, checked to be objects and ignored: ccsd
// delivers to its own devices only.

// DecodeV1 decodes a v1 send body into m with message id id. It returns
// the refusal (always an INVALID_JSON nack, INVALID_ARGUMENT in v1's
// terms) or nil. m.To is the token or "/topics/NAME"; m.Condition is set
// instead for a condition; m.DryRun is validate_only.
func DecodeV1(body []byte, id string, m *Downstream) *Nack {
	if !json.Valid(body) {
		return v1Invalid("Invalid JSON payload received: the body is not valid JSON")
	}
	body = bytes.Clone(body) // m keeps slices of it
	var msg, validate json.RawMessage
	if n := readFields(body, "", map[string]*json.RawMessage{
		"message": &msg, "validate_only": &validate, "validateOnly": &validate,
	}); n != nil {
		return n
	}
	if isAbsent(msg) {
		return v1Invalid("Missing required field: message")
	}
	*m = Downstream{MessageID: id, TTL: DefaultTTL}
	var n *Nack
	if m.DryRun, n = v1Bool(validate, "validate_only"); n != nil {
		return n
	}
	return decodeV1Message(msg, m)
}

// v1Message holds the raw fields of a v1 Message.
type v1Message struct {
	name, data, notification, android, webpush, apns, fcmOptions, token, topic, condition json.RawMessage
}

func decodeV1Message(raw json.RawMessage, m *Downstream) *Nack {
	var f v1Message
	if n := readFields(raw, "message.", map[string]*json.RawMessage{
		"name": &f.name, "data": &f.data, "notification": &f.notification, "android": &f.android,
		"webpush": &f.webpush, "apns": &f.apns, "fcm_options": &f.fcmOptions, "fcmOptions": &f.fcmOptions,
		"token": &f.token, "topic": &f.topic, "condition": &f.condition,
	}); n != nil {
		return n
	}
	if n := v1Target(&f, m); n != nil {
		return n
	}
	for _, o := range []struct {
		name string
		raw  json.RawMessage
	}{{"message.webpush", f.webpush}, {"message.apns", f.apns}} {
		if !isAbsent(o.raw) && o.raw[0] != '{' {
			return v1Invalid("Invalid value at '" + o.name + "': must be an object")
		}
	}
	if n := v1FCMOptions(f.fcmOptions, "message.fcm_options"); n != nil {
		return n
	}
	if _, n := v1String(f.name, "message.name", limit.MaxIDBytes); n != nil {
		return n // name is output only: a string is accepted and ignored
	}
	note, n := v1Notification(f.notification)
	if n != nil {
		return n
	}
	data := f.data
	var androidNote json.RawMessage
	if !isAbsent(f.android) {
		if data, androidNote, n = v1Android(f.android, data, m); n != nil {
			return n
		}
	}
	return v1Payload(m, data, mergeNotification(androidNote, note))
}

// v1Target reads the one target: token, topic or condition.
func v1Target(f *v1Message, m *Downstream) *Nack {
	given := 0
	for _, r := range []json.RawMessage{f.token, f.topic, f.condition} {
		if !isAbsent(r) {
			given++
		}
	}
	if given != 1 {
		return v1Invalid("Exactly one of message.token, message.topic or message.condition must be given")
	}
	switch {
	case !isAbsent(f.token):
		s, n := v1String(f.token, "message.token", limit.MaxIDBytes)
		if n != nil {
			return n
		}
		if s == "" || strings.HasPrefix(s, TopicPrefix) {
			return v1Invalid("The registration token is not a valid FCM registration token")
		}
		m.To = s
	case !isAbsent(f.topic):
		s, n := v1String(f.topic, "message.topic", len(TopicPrefix)+MaxTopicNameBytes)
		if n != nil {
			return n
		}
		s = strings.TrimPrefix(s, TopicPrefix)
		if !ValidTopicName(s) {
			return v1Invalid("Invalid value at 'message.topic': a topic name matches [a-zA-Z0-9-_.~%]{1,900}")
		}
		m.To = TopicPrefix + s
	default:
		s, n := v1String(f.condition, "message.condition", MaxConditionBytes)
		if n != nil {
			return n
		}
		if _, n := ParseCondition(s); n != nil {
			return n
		}
		m.Condition = s
	}
	return nil
}

// v1Android reads message.android into m: it returns the data that goes
// (android.data replaces message.data) and android.notification.
func v1Android(raw, data json.RawMessage, m *Downstream) (json.RawMessage, json.RawMessage, *Nack) {
	var collapse, prio, ttl, pkg, adata, note, opts, direct, bw, sat json.RawMessage
	if n := readFields(raw, "message.android.", map[string]*json.RawMessage{
		"collapse_key": &collapse, "collapseKey": &collapse, "priority": &prio, "ttl": &ttl,
		"restricted_package_name": &pkg, "restrictedPackageName": &pkg, "data": &adata,
		"notification": &note, "fcm_options": &opts, "fcmOptions": &opts,
		"direct_boot_ok": &direct, "directBootOk": &direct,
		"bandwidth_constrained_ok": &bw, "bandwidthConstrainedOk": &bw,
		"restricted_satellite_ok": &sat, "restrictedSatelliteOk": &sat,
	}); n != nil {
		return nil, nil, n
	}
	var n *Nack
	if m.CollapseKey, n = v1String(collapse, "message.android.collapse_key", limit.MaxIDBytes); n != nil {
		return nil, nil, n
	}
	if m.RestrictedPackage, n = v1String(pkg, "message.android.restricted_package_name", limit.MaxIDBytes); n != nil {
		return nil, nil, n
	}
	if m.Priority, n = v1Priority(prio); n != nil {
		return nil, nil, n
	}
	if m.TTL, n = v1TTL(ttl); n != nil {
		return nil, nil, n
	}
	// Accepted and checked, not carried: ccsd's devices have one session
	// and no direct-boot or satellite mode (docs: "HTTP v1").
	for _, b := range []struct {
		raw  json.RawMessage
		name string
	}{{direct, "direct_boot_ok"}, {bw, "bandwidth_constrained_ok"}, {sat, "restricted_satellite_ok"}} {
		if _, n := v1Bool(b.raw, "message.android."+b.name); n != nil {
			return nil, nil, n
		}
	}
	if n := v1FCMOptions(opts, "message.android.fcm_options"); n != nil {
		return nil, nil, n
	}
	if note, n = v1Object(note, "message.android.notification"); n != nil {
		return nil, nil, n
	}
	if !isAbsent(adata) {
		data = adata
	}
	return data, note, nil
}

// v1Notification checks message.notification: title, body, image.
func v1Notification(raw json.RawMessage) (json.RawMessage, *Nack) {
	if isAbsent(raw) {
		return nil, nil
	}
	var title, body, image json.RawMessage
	if n := readFields(raw, "message.notification.", map[string]*json.RawMessage{"title": &title, "body": &body, "image": &image}); n != nil {
		return nil, n
	}
	for _, f := range []struct {
		raw  json.RawMessage
		name string
	}{{title, "title"}, {body, "body"}, {image, "image"}} {
		if !isAbsent(f.raw) && f.raw[0] != '"' {
			return nil, v1Invalid("Invalid value at 'message.notification." + f.name + "' (TYPE_STRING)")
		}
	}
	return raw, nil
}

// mergeNotification is the notification the device gets: the members of
// android.notification, then title, body and image of message.notification
// that android.notification does not set (it overrides them, as in FCM).
func mergeNotification(android, common json.RawMessage) json.RawMessage {
	if android == nil && common == nil {
		return nil
	}
	o := newObject(make([]byte, 0, len(android)+len(common)+2))
	var seen keySet
	for _, src := range []json.RawMessage{android, common} {
		if src == nil {
			continue
		}
		r, _ := newObjectReader(src)
		for key, val, more := r.next(); more; key, val, more = r.next() {
			k, _ := jsonString(key)
			if isAbsent(val) || !seen.add(k) {
				continue
			}
			o.raw(k, compactValue(val))
		}
	}
	return o.done()
}

// compactValue is val without insignificant white space.
func compactValue(val []byte) []byte {
	var b bytes.Buffer
	if json.Compact(&b, val) != nil {
		return val
	}
	return b.Bytes()
}

// v1Payload checks data (string values only, as v1 requires, then the CCS
// rules: reserved keys, repeats, size) and fills data and notification.
func v1Payload(m *Downstream, data, note json.RawMessage) *Nack {
	if !isAbsent(data) {
		r, ok := newObjectReader(data)
		if !ok {
			return v1Invalid("Invalid value at 'message.data': must be an object of strings")
		}
		for key, val, more := r.next(); more; key, val, more = r.next() {
			if len(val) == 0 || val[0] != '"' {
				k, _ := jsonString(key)
				return v1Invalid("Invalid value at 'message.data[" + clip(k) + "].value' (TYPE_STRING): v1 data values are strings")
			}
		}
	}
	var n *Nack
	size := 0
	if m.Data, size, n = validateData(data); n != nil {
		return n
	}
	if note != nil {
		if k, dup := DuplicateKey(note); dup {
			return InvalidJSON("JSON_PARSING_ERROR", "Duplicate key in notification: "+clip(k))
		}
		m.Notification = note
		size += len(note)
	}
	if size > MaxDataSize {
		return InvalidJSON("MESSAGE_TOO_BIG", "Message is too big: the payload is "+strconv.Itoa(size)+" bytes, more than the 4096 allowed")
	}
	return nil
}

// v1FCMOptions checks fcm_options: {analytics_label}, accepted and not
// carried (ccsd keeps no analytics).
func v1FCMOptions(raw json.RawMessage, where string) *Nack {
	if isAbsent(raw) {
		return nil
	}
	var label json.RawMessage
	if n := readFields(raw, where+".", map[string]*json.RawMessage{"analytics_label": &label, "analyticsLabel": &label}); n != nil {
		return n
	}
	s, n := v1String(label, where+".analytics_label", 50)
	if n != nil {
		return n
	}
	if s != "" && !ValidTopicName(s) { // the same character class, at most 50
		return v1Invalid("Invalid value at '" + where + ".analytics_label': it matches [a-zA-Z0-9-_.~%]{1,50}")
	}
	return nil
}

// v1Priority reads android.priority: NORMAL or HIGH in any case (or the
// enum's numbers 0 and 1), as the CCS "normal" / "high".
func v1Priority(raw json.RawMessage) (string, *Nack) {
	if isAbsent(raw) {
		return "", nil
	}
	switch s, _ := jsonString(raw); {
	case strings.EqualFold(s, "normal") || string(raw) == "0":
		return "normal", nil
	case strings.EqualFold(s, "high") || string(raw) == "1":
		return "high", nil
	}
	return "", v1Invalid("Invalid value at 'message.android.priority': must be NORMAL or HIGH: " + clip(string(raw)))
}

// v1TTL reads android.ttl, a protobuf Duration ("3.5s": seconds with up to
// nine fractional digits), rounded up to whole seconds (a message is kept
// at least as long as asked), within 0..MaxTTL.
func v1TTL(raw json.RawMessage) (int64, *Nack) {
	if isAbsent(raw) {
		return DefaultTTL, nil
	}
	bad := v1Invalid("Invalid value at 'message.android.ttl' (type.googleapis.com/google.protobuf.Duration): " + clip(string(raw)))
	s, ok := jsonString(raw)
	num, okS := strings.CutSuffix(s, "s")
	if !ok || !okS {
		return 0, bad
	}
	whole, frac, hasFrac := strings.Cut(num, ".")
	if whole == "" || len(whole) > 12 || !digits(whole) || (hasFrac && (frac == "" || len(frac) > 9 || !digits(frac))) {
		return 0, bad
	}
	secs, _ := strconv.ParseInt(whole, 10, 64)
	if strings.Trim(frac, "0") != "" {
		secs++
	}
	if secs > MaxTTL {
		return 0, InvalidJSON("INVALID_TTL", "message.android.ttl must be at most 2419200s (4 weeks): "+s)
	}
	return secs, nil
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// v1String reads an optional string field of at most max bytes.
func v1String(raw json.RawMessage, where string, max int) (string, *Nack) {
	if isAbsent(raw) {
		return "", nil
	}
	s, ok := jsonString(raw)
	if !ok {
		return "", v1Invalid("Invalid value at '" + where + "' (TYPE_STRING): " + clip(string(raw)))
	}
	if len(s) > max {
		return "", v1Invalid("Invalid value at '" + where + "': longer than " + strconv.Itoa(max) + " bytes")
	}
	return s, nil
}

// v1Bool reads an optional boolean field.
func v1Bool(raw json.RawMessage, where string) (bool, *Nack) {
	b, n := optBool(raw, where)
	if n != nil {
		return false, v1Invalid("Invalid value at '" + where + "' (TYPE_BOOL): " + clip(string(raw)))
	}
	return b, nil
}

// v1Object checks an optional field that must be a JSON object.
func v1Object(raw json.RawMessage, where string) (json.RawMessage, *Nack) {
	if isAbsent(raw) {
		return nil, nil
	}
	if raw[0] != '{' {
		return nil, v1Invalid("Invalid value at '" + where + "': must be an object")
	}
	if k, dup := DuplicateKey(raw); dup {
		return nil, v1Invalid("Invalid JSON payload received: " + where + " repeats the field " + clip(k))
	}
	return raw, nil
}

// readFields reads the members of the object raw into the fields named in
// into (several names may share a field: the two spellings of one).
// Anything else, a repeated field or a non-object is refused, naming the
// field at prefix.
func readFields(raw json.RawMessage, prefix string, into map[string]*json.RawMessage) *Nack {
	r, ok := newObjectReader(raw)
	if !ok {
		return v1Invalid("Invalid JSON payload received: '" + strings.TrimSuffix(prefix, ".") + "' must be an object")
	}
	for key, val, more := r.next(); more; key, val, more = r.next() {
		name, _ := jsonString(key)
		f, known := into[name]
		switch {
		case !known:
			return v1Invalid("Invalid JSON payload received. Unknown name " + clip(name) + " at '" + strings.TrimSuffix(prefix, ".") + "': Cannot find field.")
		case *f != nil:
			return v1Invalid("Invalid JSON payload received: the field " + clip(prefix+name) + " is given twice")
		}
		*f = val
	}
	if r.err {
		return v1Invalid("Invalid JSON payload received: '" + strings.TrimSuffix(prefix, ".") + "' must be an object")
	}
	return nil
}

// v1Invalid is a refusal of the v1 decoder: INVALID_JSON /
// INVALID_PARAMETERS, which v1 answers INVALID_ARGUMENT.
func v1Invalid(text string) *Nack {
	return &Nack{Code: CodeInvalidJSON, Sub: "INVALID_PARAMETERS", Description: text}
}
