package httpapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// TestGCMSendMulticastAnswers: a multicast is validated once, yet each
// recipient's result is what validating its own message gave: a target
// error wins over a field error, a field error with an HTTP name is every
// other recipient's result, one without is a 400 for the request.
func TestGCMSendMulticastAnswers(t *testing.T) {
	fx := newAppFixture(t)
	h := NewSendHandler(fx.router(t), fx.senders, nil, zerolog.Nop())
	for _, tt := range []struct {
		name, body string
		status     int
		results    []string // per recipient: "id" for a message id, else the error
	}{
		{"mixed targets", `{"registration_ids":["","` + fx.reg + `","nope"],"data":{"k":"v"},"dry_run":true}`, 200, []string{"MissingRegistration", "id", "InvalidRegistration"}},
		{"field error behind a target error", `{"registration_ids":["","` + fx.reg + `"],"time_to_live":-1}`, 200, []string{"MissingRegistration", "InvalidTtl"}},
		{"reserved data key", `{"registration_ids":["` + fx.reg + `","nope"],"data":{"from":"x"}}`, 200, []string{"InvalidDataKey", "InvalidDataKey"}},
		{"topic among the ids", `{"registration_ids":["` + fx.reg + `","/topics/a"]}`, 400, nil},
		{"wrong type", `{"registration_ids":["` + fx.reg + `"],"time_to_live":"soon"}`, 400, nil},
		// Counted on the text encoding/json writes: each < is six bytes.
		{"HTML characters count escaped", `{"registration_ids":["` + fx.reg + `"],"dry_run":true,"notification":{"t":"` + strings.Repeat("<", 700) + `"}}`, 200, []string{"MessageTooBig"}},
	} {
		rec := post(h, fx.key, tt.body)
		if rec.Code != tt.status {
			t.Errorf("%s: status %d %s, want %d", tt.name, rec.Code, rec.Body, tt.status)
			continue
		}
		if tt.status != 200 {
			continue
		}
		var v multicastResponse
		if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil || len(v.Results) != len(tt.results) {
			t.Errorf("%s: body %s", tt.name, rec.Body)
			continue
		}
		for i, want := range tt.results {
			got := v.Results[i].Error
			if want == "id" && v.Results[i].MessageID != "" {
				got = "id"
			}
			if got != want {
				t.Errorf("%s: result %d is %+v, want %s", tt.name, i, v.Results[i], want)
			}
		}
	}
}

// TestGCMSendStoresCompactCopies: what a device receives from a multicast
// is the request's fields in compact form (nested values too), one copy per
// recipient with its own "to" and message id.
func TestGCMSendStoresCompactCopies(t *testing.T) {
	fx := newAppFixture(t)
	reg2 := fx.register(t, "REG-2", "d2")
	h := NewSendHandler(fx.router(t), fx.senders, nil, zerolog.Nop())
	rec := post(h, fx.key, `{"registration_ids":["`+fx.reg+`","`+reg2+`"], "data" : { "o" : {"x" : [1, 2]}, "s":"a&b" }, "notification":{ "t" : "x" }}`)
	var v multicastResponse
	if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &v) != nil || v.Success != 2 {
		t.Fatalf("send: %d %s", rec.Code, rec.Body)
	}
	for i, dev := range []string{"d1", "d2"} {
		msgs, err := fx.db.Pending(dev, 0, 10, time.Now().UnixMilli())
		if err != nil || len(msgs) != 1 {
			t.Fatalf("%s: %d messages (%v)", dev, len(msgs), err)
		}
		var c struct {
			To           string `json:"to"`
			Data         json.RawMessage
			Notification json.RawMessage
		}
		p := string(msgs[0].Payload)
		if err := json.Unmarshal(msgs[0].Payload, &c); err != nil {
			t.Fatal(err)
		}
		if string(c.Data) != `{"o":{"x":[1,2]},"s":"a&b"}` || string(c.Notification) != `{"t":"x"}` {
			t.Errorf("%s: copy %s", dev, p)
		}
		if c.To != []string{fx.reg, reg2}[i] || !strings.Contains(p, `"message_id":"`+v.Results[i].MessageID+`"`) {
			t.Errorf("%s: copy %s, want to %s and message id %s", dev, p, []string{fx.reg, reg2}[i], v.Results[i].MessageID)
		}
	}
}

func post(h http.Handler, key, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest("POST", "/gcm/send", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "key="+key)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}
