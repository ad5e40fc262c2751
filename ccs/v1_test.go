package ccs

import (
	"encoding/json"
	"strings"
	"testing"
)

func decodeV1(t *testing.T, body string) (*Downstream, *Nack) {
	t.Helper()
	var m Downstream
	n := DecodeV1([]byte(body), "id-1", &m)
	return &m, n
}

func TestDecodeV1Full(t *testing.T) {
	m, n := decodeV1(t, `{"validate_only": true, "message": {
		"token": "reg-1",
		"data": {"k": "v", "n": "1"},
		"notification": {"title": "T", "body": "B", "image": "https://x/i.png"},
		"android": {"collapse_key": "ck", "priority": "high", "ttl": "3.5s", "restricted_package_name": "com.x",
			"notification": {"title": "AT", "icon": "ic", "click_action": "OPEN"}, "direct_boot_ok": true,
			"fcm_options": {"analytics_label": "a-1"}},
		"apns": {"headers": {"apns-priority": "10"}, "payload": {"aps": {}}},
		"webpush": {"headers": {}},
		"fcm_options": {"analytics_label": "lbl"}}}`)
	if n != nil {
		t.Fatal(n)
	}
	if m.To != "reg-1" || m.MessageID != "id-1" || !m.DryRun || m.CollapseKey != "ck" || m.Priority != "high" ||
		m.TTL != 4 || m.RestrictedPackage != "com.x" || string(m.Data) != `{"k":"v","n":"1"}` {
		t.Fatalf("decoded %+v", m)
	}
	// android.notification first and winning, then what it lacks of notification.
	want := `{"title":"AT","icon":"ic","click_action":"OPEN","body":"B","image":"https://x/i.png"}`
	if string(m.Notification) != want {
		t.Fatalf("notification = %s, want %s", m.Notification, want)
	}
}

func TestDecodeV1Targets(t *testing.T) {
	for body, want := range map[string]string{
		`{"message":{"topic":"news"}}`:                                                                     "to=/topics/news",
		`{"message":{"topic":"/topics/news"}}`:                                                             "to=/topics/news",
		`{"message":{"condition":"'a' in topics && 'b' in topics"}}`:                                       "cond='a' in topics && 'b' in topics",
		`{"message":{"token":"r","data":{},"android":{"data":{"x":"y"}}}}`:                                 "to=r data={\"x\":\"y\"}",
		`{"message":{"token":"r","android":{"priority":"NORMAL","collapseKey":"c"}},"validateOnly":false}`: "to=r prio=normal ck=c",
		`{"message":{"token":"r","android":{"priority":1,"ttl":"0s"}}}`:                                    "to=r prio=high ttl=0",
		`{"message":{"token":"r","android":{"ttl":"86400s"}}}`:                                             "to=r ttl=86400",
		`{"message":{"token":"r","android":{"ttl":"0.000000001s"}}}`:                                       "to=r ttl=1",
	} {
		m, n := decodeV1(t, body)
		if n != nil {
			t.Errorf("%s: %v", body, n)
			continue
		}
		got := ""
		if m.To != "" {
			got = "to=" + m.To
		}
		if m.Condition != "" {
			got = "cond=" + m.Condition
		}
		if m.Data != nil {
			got += " data=" + string(m.Data)
		}
		if m.Priority != "" {
			got += " prio=" + m.Priority
		}
		if m.CollapseKey != "" {
			got += " ck=" + m.CollapseKey
		}
		if m.TTL != DefaultTTL {
			got += " ttl=" + strings.TrimSpace(jsonNum(m.TTL))
		}
		if got != want {
			t.Errorf("%s: got %q, want %q", body, got, want)
		}
	}
}

func jsonNum(v int64) string { b, _ := json.Marshal(v); return string(b) }

func TestDecodeV1Refusals(t *testing.T) {
	for _, body := range []string{
		``, `[]`, `{}`, `{"message":null}`, `{"message":[]}`,
		`{"message":{}}`,
		`{"message":{"token":"r","topic":"t"}}`,
		`{"message":{"token":"r"},"extra":1}`,
		`{"message":{"token":"r","to":"x"}}`,
		`{"message":{"token":"r","token":"s"}}`,
		`{"message":{"token":"r"},"validate_only":true,"validateOnly":true}`,
		`{"message":{"token":""}}`,
		`{"message":{"token":"/topics/x"}}`,
		`{"message":{"token":1}}`,
		`{"message":{"token":"` + strings.Repeat("r", 513) + `"}}`,
		`{"message":{"topic":"bad name"}}`,
		`{"message":{"condition":"'a' in topics &&"}}`,
		`{"message":{"token":"r","data":{"k":1}}}`,
		`{"message":{"token":"r","data":{"k":null}}}`,
		`{"message":{"token":"r","data":{"from":"x"}}}`,
		`{"message":{"token":"r","data":{"google.x":"x"}}}`,
		`{"message":{"token":"r","data":"x"}}`,
		`{"message":{"token":"r","data":{"k":"` + strings.Repeat("v", 4100) + `"}}}`,
		`{"message":{"token":"r","notification":{"title":1}}}`,
		`{"message":{"token":"r","notification":{"sound":"x"}}}`,
		`{"message":{"token":"r","android":{"priority":"urgent"}}}`,
		`{"message":{"token":"r","android":{"ttl":"3.5"}}}`,
		`{"message":{"token":"r","android":{"ttl":"-1s"}}}`,
		`{"message":{"token":"r","android":{"ttl":"2419201s"}}}`,
		`{"message":{"token":"r","android":{"ttl":"1.0000000001s"}}}`,
		`{"message":{"token":"r","android":{"ttl":3600}}}`,
		`{"message":{"token":"r","android":{"direct_boot_ok":"yes"}}}`,
		`{"message":{"token":"r","android":{"notification":[]}}}`,
		`{"message":{"token":"r","android":{"notification":{"a":1,"a":2}}}}`,
		`{"message":{"token":"r","android":{"unknown":1}}}`,
		`{"message":{"token":"r","apns":"x"}}`,
		`{"message":{"token":"r","fcm_options":{"analytics_label":"has space"}}}`,
		`{"message":{"token":"r"},"validate_only":"yes"}`,
	} {
		if _, n := decodeV1(t, body); n == nil {
			t.Errorf("%s: accepted", body)
		} else if e := n.V1(); e.HTTPStatus != 400 || e.ErrorCode != V1InvalidArgument {
			t.Errorf("%s: %v answers %+v, want 400 INVALID_ARGUMENT", body, n, e)
		}
	}
}

func TestNackV1(t *testing.T) {
	for _, c := range []struct {
		n      *Nack
		status int
		code   string
	}{
		{&Nack{Code: CodeBadRegistration}, 400, V1InvalidArgument},
		{&Nack{Code: CodeBadRegistration, Sub: SubSenderMismatch}, 403, V1SenderIDMismatch},
		{&Nack{Code: CodeDeviceUnregistered}, 404, V1Unregistered},
		{RateExceeded("Downstream"), 429, V1QuotaExceeded},
		{&Nack{Code: CodeTopicsMessageRateExceeded}, 429, V1QuotaExceeded},
		{&Nack{Code: CodeServiceUnavailable}, 503, V1Unavailable},
		{&Nack{Code: CodeConnectionDraining}, 503, V1Unavailable},
		{&Nack{Code: CodeInternalServerError}, 500, V1Internal},
		{InvalidJSON("INVALID_TTL", "x"), 400, V1InvalidArgument},
		{InvalidJSON("JSON_TYPE_ERROR", "x"), 400, V1InvalidArgument},
		{&Nack{Code: CodeBadAck}, 500, V1Internal},
	} {
		if e := c.n.V1(); e.HTTPStatus != c.status || e.ErrorCode != c.code {
			t.Errorf("%v: V1 = %+v, want %d %s", c.n, e, c.status, c.code)
		}
	}
	// The legacy names are unchanged by the v1 column.
	if name, ok := (&Nack{Code: CodeBadRegistration, Sub: SubSenderMismatch}).HTTPError(); !ok || name != "MismatchSenderId" {
		t.Errorf("legacy name = %q, %v", name, ok)
	}
	if _, ok := InvalidJSON("JSON_TYPE_ERROR", "x").HTTPError(); ok {
		t.Errorf("a type error got a legacy name")
	}
}

// FuzzDecodeV1 feeds arbitrary bodies to the v1 decoder: it never panics,
// and what it accepts is a message the router can take: one target, data
// and notification as JSON objects (data of strings), the CCS bounds.
func FuzzDecodeV1(f *testing.F) {
	for _, s := range []string{
		`{"message":{"token":"r","data":{"k":"v"}}}`,
		`{"message":{"topic":"news","notification":{"title":"t"},"android":{"notification":{"body":"b"}}}}`,
		`{"message":{"condition":"'a' in topics || !('b' in topics) && 'c' in topics"},"validate_only":true}`,
		`{"message":{"token":"r","android":{"ttl":"3.5s","priority":"high","data":{"x":"\u00e9"}}}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var m Downstream
		if n := DecodeV1(body, "id", &m); n != nil {
			if e := n.V1(); e.HTTPStatus != 400 {
				t.Fatalf("refusal %v is not a 400", n)
			}
			return
		}
		if (m.To == "") == (m.Condition == "") {
			t.Fatalf("accepted with to %q and condition %q", m.To, m.Condition)
		}
		if m.TTL < 0 || m.TTL > MaxTTL || (m.Priority != "" && m.Priority != "normal" && m.Priority != "high") {
			t.Fatalf("accepted %+v", m)
		}
		if m.Data != nil {
			var d map[string]string
			if err := json.Unmarshal(m.Data, &d); err != nil {
				t.Fatalf("data %s: %v", m.Data, err)
			}
		}
		if m.Notification != nil {
			var o map[string]any
			if err := json.Unmarshal(m.Notification, &o); err != nil {
				t.Fatalf("notification %s: %v", m.Notification, err)
			}
		}
		if len(m.Data)+len(m.Notification) > MaxDataJSONBytes+MaxDataSize {
			t.Fatalf("payload of %d bytes accepted", len(m.Data)+len(m.Notification))
		}
	})
}
