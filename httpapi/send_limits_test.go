package httpapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

// TestGCMSendRefusesSmuggledPayloads: a JSON body whose map form would hide
// a repeated field, data with a repeated key, and ids past the bound are
// refused as a whole with 400 and the legacy {"error": ...} body, and
// nothing is queued for the device.
func TestGCMSendRefusesSmuggledPayloads(t *testing.T) {
	fx := newAppFixture(t)
	db, key, reg := fx.db, fx.key, fx.reg
	h := NewSendHandler(fx.router(t), fx.senders, nil, zerolog.Nop())
	long := strings.Repeat("i", 513)
	for name, body := range map[string]string{
		"repeated data key":      `{"to":"` + reg + `","data":{"k":"` + strings.Repeat("x", 4000) + `","k":"` + strings.Repeat("y", 4000) + `"}}`,
		"repeated top-level key": `{"to":"` + reg + `","collapse_key":"a","collapse_key":"b"}`,
		"repeated target":        `{"to":"nobody","to":"` + reg + `"}`,
		"long collapse_key":      `{"to":"` + reg + `","collapse_key":"` + strings.Repeat("c", 600) + `"}`,
		"long to":                `{"to":"` + long + `"}`,
		"long registration id":   `{"registration_ids":["` + reg + `","` + long + `"]}`,
		"long notification_key":  `{"notification_key":"` + long + `"}`,
	} {
		req := httptest.NewRequest("POST", "/gcm/send", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "key="+key)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		var v map[string]any
		if rec.Code != http.StatusBadRequest || json.Unmarshal(rec.Body.Bytes(), &v) != nil || v["error"] == nil {
			t.Errorf("%s: %d %s, want 400 with a JSON error", name, rec.Code, rec.Body)
		}
	}
	if n, err := db.QueueLen("d1"); err != nil || n != 0 {
		t.Fatalf("queued %d messages (%v), want none", n, err)
	}
}
