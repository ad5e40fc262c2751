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

	"github.com/rs/zerolog"

	"github.com/ccsd/ccsd/groups"
)

// FuzzNotificationRequest sends arbitrary bodies to /gcm/notification with a
// valid sender's credentials, against a real store holding one group. Every
// answer must be one of the documented statuses with a JSON body (a key or
// an error), never a 5xx while the store is healthy, and never a panic.
// Seeds: testdata/http/notification-*.json at the repository root, with
// REG and KEY replaced by a live registration and the group's key.
func FuzzNotificationRequest(f *testing.F) {
	fx := newAppFixture(f)
	reg2ID := fx.register(f, "REG-2", "d2")
	r := groups.New(fx.db, 10)
	gkey, err := r.Create(context.Background(), fx.sender, "seed-group", []string{fx.reg})
	if err != nil {
		f.Fatal(err)
	}
	h := NewNotificationHandler(r, fx.senders, nil, zerolog.Nop())
	key := fx.key
	seeds, _ := filepath.Glob("../testdata/http/notification-*.json")
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(strings.NewReplacer("REG", reg2ID, "KEY", gkey).Replace(string(b)))
	}
	f.Fuzz(func(t *testing.T, body string) {
		req := httptest.NewRequest("POST", "/gcm/notification", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "key="+key)
		req.Header.Set("project_id", fx.sender)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK, http.StatusBadRequest, http.StatusNotFound, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body)
		}
		var v map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
			t.Fatalf("answer is not JSON for %q: %s", body, rec.Body)
		}
		if rec.Code == http.StatusOK && v["notification_key"] == nil || rec.Code != http.StatusOK && v["error"] == nil {
			t.Fatalf("status %d with body %s", rec.Code, rec.Body)
		}
	})
}
