package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
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

// FuzzGCMSend sends arbitrary JSON and plain-text bodies to /gcm/send with a
// valid key, through the real router and store. The answer must be one of
// the legacy API's statuses: a 200 JSON body with one result per target, a
// 400 JSON error, or the plain-text form's id=/Error= lines; never a 5xx
// but the group send's 503, and never a panic. Seeds: testdata/http/send-*
// at the repository root, with REG and KEY replaced by a live registration
// and a group key.
func FuzzGCMSend(f *testing.F) {
	fx := newAppFixture(f)
	const gkey = "APA91bFUZZKEY"
	if err := fx.db.CreateGroup(context.Background(), store.Group{Key: gkey, Name: "g", SenderID: fx.sender, App: "com.x", Members: []string{fx.reg}, Created: time.Now()}); err != nil {
		f.Fatal(err)
	}
	h := NewSendHandler(fx.router(f), fx.senders, nil, zerolog.Nop())
	key := fx.key
	seeds, _ := filepath.Glob("../testdata/http/send-*")
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(strings.HasSuffix(p, ".json"), strings.NewReplacer("REG", fx.reg, "KEY", gkey).Replace(string(b)))
	}
	f.Fuzz(func(t *testing.T, isJSON bool, body string) {
		req := httptest.NewRequest("POST", "/gcm/send", strings.NewReader(body))
		if isJSON {
			req.Header.Set("Content-Type", "application/json")
		}
		req.Header.Set("Authorization", "key="+key)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch {
		case rec.Code == http.StatusServiceUnavailable && rec.Body.Len() == 0:
			// A device-group send none of whose members could be queued.
		case !isJSON && (rec.Code == 200 || rec.Code == 400) && (strings.HasPrefix(rec.Body.String(), "id=") || strings.HasPrefix(rec.Body.String(), "Error=")):
		case isJSON && rec.Code == 200:
			var v struct {
				Success *int             `json:"success"`
				Results []map[string]any `json:"results"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil || v.Success == nil {
				t.Fatalf("200 body for %q: %s", body, rec.Body)
			}
		case isJSON && rec.Code == 400:
			var v map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil || v["error"] == nil {
				t.Fatalf("400 body for %q: %s", body, rec.Body)
			}
		default:
			t.Fatalf("status %d for %q (json=%v): %q", rec.Code, body, isJSON, rec.Body)
		}
	})
}

// TestGCMSendAuthErrors: a wrong key is 401; a key that cannot be checked
// because the store is closed is a retryable 503, not a 401.
func TestGCMSendAuthErrors(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "ccsd.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	senders := auth.NewSenders(db)
	_, key, err := senders.Create("")
	if err != nil {
		t.Fatal(err)
	}
	router, err := fanout.New(fanout.Config{Store: db, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer router.Close()
	h := NewSendHandler(router, senders, nil, zerolog.Nop())
	do := func(k string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("POST", "/gcm/send", strings.NewReader(`{"registration_ids":["x"]}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "key="+k)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	if rec := do("wrong"); rec.Code != http.StatusUnauthorized {
		t.Fatalf("wrong key: %d %s", rec.Code, rec.Body)
	}
	if rec := do(key); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"InvalidRegistration"`) {
		t.Fatalf("valid key, unknown registration: %d %s", rec.Code, rec.Body)
	}
	db.Close()
	if rec := do(key); rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("closed store: %d %s", rec.Code, rec.Body)
	}
}
