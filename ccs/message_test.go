package ccs

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/ccsd/ccsd/internal/limit"
)

func TestValidateDownstream(t *testing.T) {
	big := `{"to":"R","message_id":"m","data":{"k":"` + strings.Repeat("x", MaxDataSize) + `"}}`
	tests := []struct {
		name    string
		in      string
		code    Code   // "" = valid
		subcode string // part of the description
	}{
		{"minimal", `{"to":"R","message_id":"m"}`, "", ""},
		{"full", `{"to":"R","message_id":"m","collapse_key":"c","priority":"high","time_to_live":3600,"delay_while_idle":true,"delivery_receipt_requested":true,"dry_run":false,"content_available":true,"data":{"a":"b","n":1},"notification":{"title":"t"}}`, "", ""},
		{"ttl as digit string", `{"to":"R","message_id":"m","time_to_live":"600"}`, "", ""},
		{"ttl max", `{"to":"R","message_id":"m","time_to_live":2419200}`, "", ""},
		{"null fields are absent", `{"to":"R","message_id":"m","data":null,"collapse_key":null}`, "", ""},
		{"missing to", `{"message_id":"m"}`, CodeInvalidJSON, "MISSING_REGISTRATION"},
		{"empty to", `{"to":"","message_id":"m"}`, CodeInvalidJSON, "MISSING_REGISTRATION"},
		{"to not a string", `{"to":5,"message_id":"m"}`, CodeInvalidJSON, "JSON_TYPE_ERROR"},
		{"ttl word", `{"to":"R","message_id":"m","time_to_live":"abc"}`, CodeInvalidJSON, `JSON_TYPE_ERROR : Field "time_to_live" must be a JSON java.lang.Number: "abc"`},
		{"ttl negative", `{"to":"R","message_id":"m","time_to_live":-1}`, CodeInvalidJSON, "INVALID_TTL"},
		{"ttl too big", `{"to":"R","message_id":"m","time_to_live":2419201}`, CodeInvalidJSON, "INVALID_TTL"},
		{"ttl fraction", `{"to":"R","message_id":"m","time_to_live":1.5}`, CodeInvalidJSON, "INVALID_TTL"},
		{"delay_while_idle string", `{"to":"R","message_id":"m","delay_while_idle":"yes"}`, CodeInvalidJSON, "delay_while_idle"},
		{"receipt number", `{"to":"R","message_id":"m","delivery_receipt_requested":1}`, CodeInvalidJSON, "delivery_receipt_requested"},
		{"dry_run string", `{"to":"R","message_id":"m","dry_run":"true"}`, CodeInvalidJSON, "dry_run"},
		{"priority other", `{"to":"R","message_id":"m","priority":"urgent"}`, CodeInvalidJSON, "priority"},
		{"collapse_key number", `{"to":"R","message_id":"m","collapse_key":7}`, CodeInvalidJSON, "collapse_key"},
		{"data array", `{"to":"R","message_id":"m","data":[1]}`, CodeInvalidJSON, `"data" must be a JSON object`},
		{"data reserved from", `{"to":"R","message_id":"m","data":{"from":"x"}}`, CodeInvalidJSON, "INVALID_DATA_KEY"},
		{"data reserved google", `{"to":"R","message_id":"m","data":{"google.x":"x"}}`, CodeInvalidJSON, "INVALID_DATA_KEY"},
		{"data option names allowed", `{"to":"R","message_id":"m","data":{"collapse_key":"x"}}`, "", ""},
		{"too big", big, CodeInvalidJSON, "MESSAGE_TOO_BIG"},
		{"topic", `{"to":"/topics/news","message_id":"m"}`, "", ""},
		{"topic bad name", `{"to":"/topics/bad name","message_id":"m"}`, CodeInvalidJSON, "topic name"},
		{"topic empty name", `{"to":"/topics/","message_id":"m"}`, CodeInvalidJSON, "topic name"},
		{"condition", `{"condition":"'a' in topics","message_id":"m"}`, "", ""},
		{"condition and to", `{"to":"R","condition":"'a' in topics","message_id":"m"}`, CodeInvalidJSON, "not both"},
		{"condition bad", `{"condition":"!('a' in topics)","message_id":"m"}`, CodeInvalidJSON, "at least one topic"},
		{"condition number", `{"condition":5,"message_id":"m"}`, CodeInvalidJSON, "condition"},
		{"notification string", `{"to":"R","message_id":"m","notification":"x"}`, CodeInvalidJSON, "notification"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, id, serr := decodeEnvelope([]byte(tt.in))
			if serr != nil {
				t.Fatalf("decodeEnvelope: %v", serr)
			}
			m, n := validateDownstream(env, id)
			if tt.code == "" {
				if n != nil {
					t.Fatalf("want valid, got %v", n)
				}
				if m.MessageID != "m" || m.To == "" && m.Condition == "" {
					t.Fatalf("bad result %+v", m)
				}
				return
			}
			if n == nil {
				t.Fatalf("want %s, got valid", tt.code)
			}
			if n.Code != tt.code || !strings.Contains(n.Description, tt.subcode) {
				t.Fatalf("got %s %q, want %s containing %q", n.Code, n.Description, tt.code, tt.subcode)
			}
			if !strings.HasPrefix(n.Description, "InvalidJson : ") {
				t.Fatalf("description %q lacks the CCS InvalidJson prefix", n.Description)
			}
		})
	}
}

func TestValidateDownstreamDefaults(t *testing.T) {
	env, id, _ := decodeEnvelope([]byte(`{"to":"R","message_id":"m"}`))
	m, n := validateDownstream(env, id)
	if n != nil || m.TTL != DefaultTTL || m.Receipt || m.DryRun {
		t.Fatalf("defaults: %+v %v", m, n)
	}
}

func TestDecodeEnvelopeStanzaErrors(t *testing.T) {
	for _, in := range []string{
		`{"to":"R","data":{"x":"y"}}`, // missing message_id: CCS's own example
		`not json`,
		`[1,2]`,
		`{"to":"R","message_id":7}`,
		`{"to":"R","message_id":""}`,
		`{"to":"R","message_id":"m"} trailing`,
		``,
	} {
		_, _, serr := decodeEnvelope([]byte(in))
		if serr == nil {
			t.Errorf("%q: want a stanza error", in)
			continue
		}
		if !strings.HasPrefix(serr.Text, "InvalidJson: JSON_PARSING_ERROR : ") || !strings.HasSuffix(serr.Text, "\n") {
			t.Errorf("%q: text %q is not in CCS's form", in, serr.Text)
		}
	}
	_, _, serr := decodeEnvelope([]byte(`{"to":"R","data":{"x":"y"}}`))
	if want := "InvalidJson: JSON_PARSING_ERROR : Missing Required Field: message_id\n"; serr.Text != want {
		t.Fatalf("got %q, want %q (spec §4.4)", serr.Text, want)
	}
}

// TestRenderedJSONIsValid checks that every stanza ccsd renders by hand is
// valid JSON that round-trips the strings it was given, including ones that
// need escaping.
func TestRenderedJSONIsValid(t *testing.T) {
	nasty := "a\"b\\c\n\t\x01<&>é\xff"
	env, id, _ := decodeEnvelope([]byte(`{"to":"R","message_id":"m","data":{"k":"v"},"notification":{"t":"x"},"collapse_key":"c"}`))
	m, _ := validateDownstream(env, id)
	m.MessageID = nasty
	outs := map[string][]byte{
		"ack":      AckJSON(nasty, nasty),
		"nack":     NackJSON(nasty, nasty, &Nack{Code: CodeInvalidJSON, Description: nasty}),
		"drain":    DrainingJSON(nasty),
		"receipt":  ReceiptJSON(nasty, nasty, nasty, 42),
		"device":   DeviceCopyJSON(m, nasty, nasty, nasty, nasty, 42),
		"upstream": UpstreamJSON(nasty, []byte(`{"a":"b"}`), nasty, nasty, 5),
	}
	want := strings.ToValidUTF8(nasty, "\uFFFD")
	for name, b := range outs {
		var v map[string]any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatalf("%s: invalid JSON %s: %v", name, b, err)
		}
		if v["message_id"] != want && v["message_id"] != "dr2:"+want {
			t.Errorf("%s: message_id %q, want %q", name, v["message_id"], want)
		}
	}
}

func TestReceiptShape(t *testing.T) {
	var v struct {
		MessageType string            `json:"message_type"`
		From        string            `json:"from"`
		MessageID   string            `json:"message_id"`
		Category    string            `json:"category"`
		Data        map[string]string `json:"data"`
	}
	if err := json.Unmarshal(ReceiptJSON("m-1", "REG", "com.example", 1498801519251), &v); err != nil {
		t.Fatal(err)
	}
	if v.MessageType != "receipt" || v.From != "gcm.googleapis.com" || v.MessageID != "dr2:m-1" || v.Category != "com.example" ||
		v.Data["message_status"] != "MESSAGE_SENT_TO_DEVICE" || v.Data["original_message_id"] != "m-1" ||
		v.Data["device_registration_id"] != "REG" || v.Data["message_sent_timestamp"] != "1498801519251" {
		t.Fatalf("receipt does not match spec §6: %+v", v)
	}
}

// FuzzDecodeStanza feeds arbitrary JSON stanzas through the decoder and the
// validators of both sides. Nothing may panic; whatever is accepted must
// render to valid JSON. Seeds: ../testdata/stanzas.
func FuzzDecodeStanza(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("..", "testdata", "stanzas", "*.json"))
	if len(seeds) == 0 {
		f.Fatal("no seeds in testdata/stanzas")
	}
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		env, id, serr := decodeEnvelope(payload)
		if serr != nil {
			if !strings.HasPrefix(serr.Text, "InvalidJson: JSON_PARSING_ERROR : ") {
				t.Fatalf("bad stanza error text %q", serr.Text)
			}
			return
		}
		if id == "" {
			t.Fatal("accepted an empty message_id")
		}
		m, n := validateDownstream(env, id)
		checkMulticast(t, env, m, n)
		if n != nil {
			if !json.Valid(NackJSON("x", id, n)) {
				t.Fatalf("invalid nack JSON for %q", payload)
			}
			return
		}
		if m.TTL < 0 || m.TTL > MaxTTL {
			t.Fatalf("accepted ttl %d", m.TTL)
		}
		out := DeviceCopyJSON(m, "REG", "123", "app", "", 1)
		if !json.Valid(out) {
			t.Fatalf("device copy is invalid JSON: %s (from %q)", out, payload)
		}
		checkAcceptedData(t, env.Data, m.Data)
		for _, s := range []string{m.MessageID, m.To, m.CollapseKey, m.RestrictedPackage} {
			if len(s) > limit.MaxIDBytes {
				t.Fatalf("accepted a %d-byte id from %q", len(s), payload)
			}
		}
	})
}

// TestDataSmuggling: the data limit is counted on what a device receives.
// A repeated key (which a map silently collapsed, so 48 KB passed as 4 KB)
// is refused; escapes count as the characters they stand for and are
// delivered compact, so they cannot inflate a stored message.
func TestDataSmuggling(t *testing.T) {
	x4000 := strings.Repeat("x", 4000)
	var dups strings.Builder
	for i := 0; i < 12; i++ {
		if i > 0 {
			dups.WriteByte(',')
		}
		dups.WriteString(`"k":"` + x4000 + `"`)
	}
	many := make([]string, 40)
	for i := range many {
		many[i] = `"k` + strconv.Itoa(i) + `":"v"`
	}
	tests := []struct {
		name, data string
		sub        string // "" = accepted
	}{
		{"repeated key 12 times", `{` + dups.String() + `}`, "JSON_PARSING_ERROR : Duplicate key in data"},
		{"repeated key once", `{"a":"1","b":"2","a":"3"}`, `Duplicate key in data: "a"`},
		{"repeat spelled with an escape", `{"a":"1","\u0061":"2"}`, `Duplicate key in data: "a"`},
		{"repeat after many keys", `{` + strings.Join(many, ",") + `,"k33":"again"}`, `Duplicate key in data: "k33"`},
		{"many distinct keys", `{` + strings.Join(many, ",") + `}`, ""},
		{"4000 escaped A count 4000", `{"k":"` + strings.Repeat(`\u0041`, 4000) + `"}`, ""},
		{"5000 escaped A count 5000", `{"k":"` + strings.Repeat(`\u0041`, 5000) + `"}`, "MESSAGE_TOO_BIG"},
		{"4000 control characters weigh 24 KB", `{"k":"` + strings.Repeat(`\u0001`, 4000) + `"}`, "MESSAGE_TOO_BIG : the data payload is 24008 bytes of JSON"},
		{"quotes in a value are fine", `{"k":"` + strings.Repeat(`\"`, 4000) + `"}`, ""},
		{"nested value counted raw", `{"k":{"a":"` + strings.Repeat(`\u0041`, 700) + `"}}`, "MESSAGE_TOO_BIG"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, id, serr := decodeEnvelope([]byte(`{"to":"R","message_id":"m","data":` + tt.data + `}`))
			if serr != nil {
				t.Fatalf("decodeEnvelope: %v", serr)
			}
			m, n := validateDownstream(env, id)
			if tt.sub != "" {
				if n == nil || n.Code != CodeInvalidJSON || !strings.Contains(n.Description, tt.sub) {
					t.Fatalf("got %v, want INVALID_JSON with %q", n, tt.sub)
				}
				return
			}
			if n != nil {
				t.Fatalf("refused: %v", n)
			}
			var in, out map[string]any
			if json.Unmarshal([]byte(tt.data), &in) != nil || json.Unmarshal(m.Data, &out) != nil || !reflect.DeepEqual(in, out) {
				t.Fatalf("data changed meaning: %s", m.Data)
			}
			if len(m.Data) > 2*MaxDataSize {
				t.Fatalf("stored data is %d bytes", len(m.Data))
			}
		})
	}
}

// TestDataCompactForm: data already in compact form is kept as sent (no
// copy on the hot path); other data is rewritten compact.
func TestDataCompactForm(t *testing.T) {
	for in, want := range map[string]string{
		`{"a":"b","n":1,"o":{"x" : 1}}`: `{"a":"b","n":1,"o":{"x" : 1}}`,
		`{ "a" : "b" , "n":1 }`:         `{"a":"b","n":1}`,
		`{"\u0061":"\u00e9\n\"\/"}`:     `{"a":"é\n\"/"}`,
		"{\"a\":\"\xff\"}":              `{"a":"\ufffd"}`,
	} {
		got, _, n := validateData(json.RawMessage(in))
		if n != nil || string(got) != want {
			t.Errorf("%s: got %s %v, want %s", in, got, n, want)
		}
	}
}

// TestDuplicateTopLevelFields: a repeated member of the message itself is
// refused too. A repeated message_id or message_type leaves no message to
// answer: a stanza error; any other is nacked.
func TestDuplicateTopLevelFields(t *testing.T) {
	for _, in := range []string{
		`{"to":"R","message_id":"m","message_id":"n"}`,
		`{"to":"R","message_id":"m","message_type":"ack","message_type":"nack"}`,
	} {
		if _, _, serr := decodeEnvelope([]byte(in)); serr == nil || !strings.Contains(serr.Text, "JSON_PARSING_ERROR : Duplicate field") {
			t.Errorf("%s: got %v, want a stanza error", in, serr)
		}
	}
	for in, name := range map[string]string{
		`{"to":"R","message_id":"m","to":"S"}`:                        "to",
		`{"to":"R","message_id":"m","data":{"a":"1"},"data":{"b":2}}`: "data",
		`{"to":"R","message_id":"m","x":1,"x":2}`:                     "x",
		`{"to":"R","message_id":"m","\u0074o":"S"}`:                   "to",
	} {
		env, id, serr := decodeEnvelope([]byte(in))
		if serr != nil {
			t.Fatalf("%s: %v", in, serr)
		}
		_, n := validateDownstream(env, id)
		if n == nil || n.Code != CodeInvalidJSON || !strings.Contains(n.Description, "JSON_PARSING_ERROR : Duplicate field: \""+name+"\"") {
			t.Errorf("%s: got %v", in, n)
		}
		if hc, ok := n.HTTPError(); ok {
			t.Errorf("%s: HTTP maps it to result error %q, want a 400", in, hc)
		}
	}
	env, id, _ := decodeEnvelope([]byte(`{"to":"R","message_id":"m","notification":{"title":"a","title":"b"}}`))
	if _, n := validateDownstream(env, id); n == nil || !strings.Contains(n.Description, `Duplicate key in notification: "title"`) {
		t.Errorf("repeated notification key: %v", n)
	}
	// Names match exactly, as in CCS: another spelling is another field.
	if _, _, serr := decodeEnvelope([]byte(`{"to":"R","Message_ID":"m"}`)); serr == nil || !strings.Contains(serr.Text, "Missing Required Field: message_id") {
		t.Errorf("Message_ID taken for message_id: %v", serr)
	}
}

// TestIDBounds: every client-chosen id is bounded, so a long one is the
// client's error (INVALID_JSON, not retried) rather than a store failure
// (INTERNAL_SERVER_ERROR, retried forever).
func TestIDBounds(t *testing.T) {
	at, over := strings.Repeat("i", limit.MaxIDBytes), strings.Repeat("i", limit.MaxIDBytes+1)
	for _, field := range []string{"message_id", "to", "collapse_key", "restricted_package_name"} {
		msg := map[string]any{"to": "R", "message_id": "m"}
		msg[field] = at
		if n := downstreamNack(t, msg); n != nil {
			t.Errorf("%s of %d bytes: %v", field, limit.MaxIDBytes, n)
		}
		msg[field] = over
		n := downstreamNack(t, msg)
		want := "InvalidJson : INVALID_PARAMETERS : Field \"" + field + "\" is longer than 512 bytes"
		if n == nil || n.Code != CodeInvalidJSON || n.Description != want {
			t.Errorf("%s of %d bytes: got %v, want %q", field, len(over), n, want)
		}
	}
	// Counted decoded: an escaped id is as long as what it stands for.
	if n := downstreamNack(t, map[string]any{"to": "R", "message_id": "m", "collapse_key": json.RawMessage(`"` + strings.Repeat(`\u0041`, 500) + `"`)}); n != nil {
		t.Errorf("500-character collapse_key written with escapes: %v", n)
	}
	// A device's upstream: the check and the field reader it uses.
	env, id, _ := decodeEnvelope([]byte(`{"to":"1@gcm.googleapis.com","category":"c","message_id":"` + strings.Repeat("u", 40000) + `"}`))
	if n := env.check(id); n == nil || !strings.Contains(n.Description, `"message_id" is longer`) {
		t.Errorf("40 KB upstream message_id: %v", n)
	}
	if _, n := optString(json.RawMessage(`"`+over+`"`), "category"); n == nil || n.Code != CodeInvalidJSON {
		t.Errorf("long category: %v", n)
	}
}

func downstreamNack(t *testing.T, msg map[string]any) *Nack {
	t.Helper()
	b, err := json.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	env, id, serr := decodeEnvelope(b)
	if serr != nil {
		t.Fatalf("%s: %v", b, serr)
	}
	_, n := validateDownstream(env, id)
	return n
}

func TestDuplicateKey(t *testing.T) {
	for in, want := range map[string]string{
		`{"a":1,"b":{"a":1},"c":[1,"a"]}`: "",
		`{"a":1,"b":2,"a":3}`:             "a",
		` { "a" : 1 , "\u0061" : 2 } `:    "a",
		`[1,1]`:                           "",
		`{}`:                              "",
	} {
		got, ok := DuplicateKey([]byte(in))
		if got != want || ok != (want != "") {
			t.Errorf("%s: got %q %v, want %q", in, got, ok, want)
		}
	}
}

// checkAcceptedData holds for any data validateData accepted: what is
// stored means what the client sent, has no repeated key and is within
// MaxDataJSONBytes.
func checkAcceptedData(t *testing.T, sent, stored json.RawMessage) {
	t.Helper()
	if isAbsent(sent) {
		return
	}
	if len(stored) > MaxDataJSONBytes || !json.Valid(stored) {
		t.Fatalf("stored data %q (%d bytes) from %q", stored, len(stored), sent)
	}
	if k, dup := DuplicateKey(stored); dup {
		t.Fatalf("stored data repeats %q: %q", k, stored)
	}
	var a, b map[string]any
	if json.Unmarshal(sent, &a) != nil || json.Unmarshal(stored, &b) != nil || !reflect.DeepEqual(a, b) {
		t.Fatalf("stored data %q does not mean %q", stored, sent)
	}
}

// checkMulticast holds for any stanza whose "to" is a string and whose ids
// are within bounds: validating it once as a multicast and making the copy
// for its own "to" gives what validating it directly gave.
func checkMulticast(t *testing.T, env *Stanza, m *Downstream, n *Nack) {
	t.Helper()
	to, ok := jsonString(env.To)
	if !ok || len(to) > limit.MaxIDBytes || len(env.ID) > limit.MaxIDBytes {
		return
	}
	var got Downstream
	gotN := env.Multicast().For(to, env.ID, &got)
	if !reflect.DeepEqual(gotN, n) || (n == nil && !reflect.DeepEqual(&got, m)) {
		t.Fatalf("multicast copy differs: %v %+v, direct %v %+v", gotN, got, n, m)
	}
}
