package groups

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

	"github.com/ccsd/ccsd/auth"
	"github.com/ccsd/ccsd/store"
	"github.com/ccsd/ccsd/store/bolt"
)

// FuzzNotificationRequest sends arbitrary bodies to /gcm/notification with a
// valid sender's credentials, against a real store holding one group. Every
// answer must be one of the documented statuses with a JSON body (a key or
// an error), never a 5xx while the store is healthy, and never a panic.
// Seeds: testdata/http/notification-*.json at the repository root, with
// REG and KEY replaced by a live registration and the group's key.
func FuzzNotificationRequest(f *testing.F) {
	db, err := bolt.Open(filepath.Join(f.TempDir(), "ccsd.db"), bolt.Options{})
	if err != nil {
		f.Fatal(err)
	}
	defer db.Close()
	senders := auth.NewSenders(db)
	snd, key, err := senders.Create("123456789012")
	if err != nil {
		f.Fatal(err)
	}
	reg, err := db.Register(store.Registration{ID: "REG-1", DeviceID: "d1", SenderID: snd.ID, App: "com.x", Created: time.Now()})
	if err != nil {
		f.Fatal(err)
	}
	reg2, _ := db.Register(store.Registration{ID: "REG-2", DeviceID: "d2", SenderID: snd.ID, App: "com.x", Created: time.Now()})
	reg2ID := reg2.ID
	r := New(db, 10)
	gkey, err := r.Create(context.Background(), snd.ID, "seed-group", []string{reg.ID})
	if err != nil {
		f.Fatal(err)
	}
	h := r.Handler(senders, nil)
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
		req.Header.Set("project_id", snd.ID)
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
