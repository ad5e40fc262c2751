package ccs

import (
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// TestMulticastMatchesDownstream: validating a body once and making each
// recipient's copy with For gives, recipient by recipient, what validating
// that recipient's own stanza gives (the same nack, or the same message).
func TestMulticastMatchesDownstream(t *testing.T) {
	bodies := []string{
		`{}`,
		`{"collapse_key":"c","priority":"high","time_to_live":3600,"delivery_receipt_requested":true,"content_available":true,"data":{"a":"b","n":1},"notification":{"title":"t"}}`,
		`{"time_to_live":-1}`,
		`{"time_to_live":"abc"}`,
		`{"priority":"urgent"}`,
		`{"data":{"from":"x"}}`,
		`{"data":[1]}`,
		`{"condition":"'a' in topics"}`,
		`{"data":{"k":"` + strings.Repeat("x", MaxDataSize) + `"}}`,
		`{"notification":"x"}`,
		`{"dry_run":"true"}`,
	}
	targets := []string{"REG", "", "/topics/news", "APA91bKEY"}
	for _, body := range bodies {
		mc, ok := DecodeRequest([]byte(body))
		if !ok {
			t.Fatalf("%s: not an object", body)
		}
		m := mc.Multicast()
		for i, to := range targets {
			id := "m-" + strconv.Itoa(i)
			var got Downstream
			gotN := m.For(to, id, &got)
			rest := strings.TrimPrefix(body[1:], "}")
			if rest != "" {
				rest = "," + body[1:]
			} else {
				rest = "}"
			}
			st, serr := Decode([]byte(`{"to":` + strconv.Quote(to) + `,"message_id":"` + id + `"` + rest))
			if serr != nil {
				t.Fatalf("%s: %v", body, serr)
			}
			want, wantN := st.Downstream()
			if !reflect.DeepEqual(gotN, wantN) {
				t.Errorf("%s to %q: For nacks %v, Downstream %v", body, to, gotN, wantN)
				continue
			}
			if wantN == nil && !reflect.DeepEqual(&got, want) {
				t.Errorf("%s to %q: For gives %+v, Downstream %+v", body, to, got, *want)
			}
		}
	}
}

// TestHTTPErrorTable pins the one table of legacy HTTP names: each XMPP
// code (or INVALID_JSON sub-code) keeps the name the HTTP API always gave
// it, and what has none is a 400.
func TestHTTPErrorTable(t *testing.T) {
	for _, tt := range []struct {
		n    Nack
		want string // "" = no name: a 400 for the request
	}{
		{Nack{Code: CodeBadRegistration}, "InvalidRegistration"},
		{Nack{Code: CodeDeviceUnregistered}, "NotRegistered"},
		{Nack{Code: CodeServiceUnavailable}, "Unavailable"},
		{Nack{Code: CodeConnectionDraining}, "Unavailable"},
		{Nack{Code: CodeInternalServerError}, "InternalServerError"},
		{Nack{Code: CodeDeviceMessageRateExceeded}, "DeviceMessageRateExceeded"},
		{Nack{Code: CodeTopicsMessageRateExceeded}, "TopicsMessageRateExceeded"},
		{*InvalidJSON("MISSING_REGISTRATION", "x"), "MissingRegistration"},
		{*InvalidJSON("MESSAGE_TOO_BIG", "x"), "MessageTooBig"},
		{*InvalidJSON("INVALID_DATA_KEY", "x"), "InvalidDataKey"},
		{*InvalidJSON("INVALID_TTL", "x"), "InvalidTtl"},
		{*InvalidJSON("INVALID_PACKAGE_NAME", "x"), "InvalidPackageName"},
		{*InvalidJSON("JSON_TYPE_ERROR", "x"), ""},
		{*InvalidJSON("JSON_PARSING_ERROR", "x"), ""},
		{*InvalidJSON("INVALID_PARAMETERS", "x"), ""},
		{Nack{Code: CodeInvalidJSON}, ""},
		{Nack{Code: CodeBadAck}, ""},
	} {
		got, ok := tt.n.HTTPError()
		if got != tt.want || ok != (tt.want != "") {
			t.Errorf("%s/%s: got %q %v, want %q", tt.n.Code, tt.n.Sub, got, ok, tt.want)
		}
	}
}
