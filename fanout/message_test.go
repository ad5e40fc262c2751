package fanout

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
		{"topic", `{"to":"/topics/news","message_id":"m"}`, CodeInvalidJSON, "topic"},
		{"condition", `{"condition":"'a' in topics","message_id":"m"}`, CodeInvalidJSON, "condition"},
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
				if m.MessageID != "m" || m.To == "" {
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
		if !strings.HasPrefix(serr.text, "InvalidJson: JSON_PARSING_ERROR : ") || !strings.HasSuffix(serr.text, "\n") {
			t.Errorf("%q: text %q is not in CCS's form", in, serr.text)
		}
	}
	_, _, serr := decodeEnvelope([]byte(`{"to":"R","data":{"x":"y"}}`))
	if want := "InvalidJson: JSON_PARSING_ERROR : Missing Required Field: message_id\n"; serr.text != want {
		t.Fatalf("got %q, want %q (spec §4.4)", serr.text, want)
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
		"ack":      ackJSON(nasty, nasty),
		"nack":     nackJSON(nasty, nasty, &Nack{Code: CodeInvalidJSON, Description: nasty}),
		"drain":    drainingJSON(nasty),
		"receipt":  receiptJSON(nasty, nasty, nasty, 42),
		"device":   deviceCopyJSON(m, nasty, nasty, nasty, nasty, 42),
		"upstream": upstreamJSON(nasty, []byte(`{"a":"b"}`), nasty, nasty, 5),
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
	if err := json.Unmarshal(receiptJSON("m-1", "REG", "com.example", 1498801519251), &v); err != nil {
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
// render to valid JSON. Seeds: testdata/stanzas at the repository root.
func FuzzDecodeStanza(f *testing.F) {
	seeds, _ := filepath.Glob("../testdata/stanzas/*.json")
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
			if !strings.HasPrefix(serr.text, "InvalidJson: JSON_PARSING_ERROR : ") {
				t.Fatalf("bad stanza error text %q", serr.text)
			}
			return
		}
		if id == "" {
			t.Fatal("accepted an empty message_id")
		}
		m, n := validateDownstream(env, id)
		if n != nil {
			if !json.Valid(nackJSON("x", id, n)) {
				t.Fatalf("invalid nack JSON for %q", payload)
			}
			return
		}
		if m.TTL < 0 || m.TTL > MaxTTL {
			t.Fatalf("accepted ttl %d", m.TTL)
		}
		out := deviceCopyJSON(m, "REG", "123", "app", "", 1)
		if !json.Valid(out) {
			t.Fatalf("device copy is invalid JSON: %s (from %q)", out, payload)
		}
	})
}
