package httpapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ccsd/ccsd/auth"
	"github.com/ccsd/ccsd/fanout"
	"github.com/ccsd/ccsd/store"
	"github.com/ccsd/ccsd/store/bolt"
)

// TestGCMSendRefusesSmuggledPayloads: a JSON body whose map form would hide
// a repeated field, data with a repeated key, and ids past the bound are
// refused as a whole with 400 and the legacy {"error": ...} body, and
// nothing is queued for the device.
func TestGCMSendRefusesSmuggledPayloads(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "ccsd.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	senders := auth.NewSenders(db)
	snd, key, err := senders.Create("123456789012")
	if err != nil {
		t.Fatal(err)
	}
	_ = db.PutDevice(store.Device{ID: "d1", SecretHash: []byte("x"), Created: time.Now()})
	reg, err := db.Register(store.Registration{ID: "REG-1", DeviceID: "d1", SenderID: snd.ID, App: "com.x", Created: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	router, err := fanout.New(fanout.Config{Store: db, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer router.Close()
	h := NewSendHandler(router, senders, nil, zerolog.Nop())
	long := strings.Repeat("i", 513)
	for name, body := range map[string]string{
		"repeated data key":      `{"to":"` + reg.ID + `","data":{"k":"` + strings.Repeat("x", 4000) + `","k":"` + strings.Repeat("y", 4000) + `"}}`,
		"repeated top-level key": `{"to":"` + reg.ID + `","collapse_key":"a","collapse_key":"b"}`,
		"repeated target":        `{"to":"nobody","to":"` + reg.ID + `"}`,
		"long collapse_key":      `{"to":"` + reg.ID + `","collapse_key":"` + strings.Repeat("c", 600) + `"}`,
		"long to":                `{"to":"` + long + `"}`,
		"long registration id":   `{"registration_ids":["` + reg.ID + `","` + long + `"]}`,
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
