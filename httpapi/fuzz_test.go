package httpapi

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/ccsd/ccsd/auth"
	"github.com/ccsd/ccsd/store/bolt"
)

// FuzzRegister3 sends arbitrary bodies and Authorization headers to the
// register endpoint. It must always answer a GCM-style text body with a
// 2xx/4xx status, never 5xx (the store is healthy) and never panic.
func FuzzRegister3(f *testing.F) {
	db, err := bolt.Open(filepath.Join(f.TempDir(), "ccsd.db"), bolt.Options{})
	if err != nil {
		f.Fatal(err)
	}
	defer db.Close()
	senders, devices := auth.NewSenders(db), auth.NewDevices(db)
	snd, _, _ := senders.Create("123456789012")
	id, tok, _ := devices.Checkin(f.Context())
	good := "AidLogin " + id + ":" + tok
	h := New(Config{Devices: devices, Logger: zerolog.Nop()})

	f.Add(good, "app=com.x&sender="+snd.ID)
	f.Add(good, "app=com.x&sender="+snd.ID+"&delete=true")
	f.Add(good, "app=com.x&sender="+snd.ID+"&device="+id)
	f.Add(good, "app=%zz")
	f.Add("AidLogin :", "")
	f.Add("AidLogin "+id+":", "app=a&sender=b")
	f.Add("", "app=a&sender=b")
	f.Fuzz(func(t *testing.T, authz, body string) {
		req := httptest.NewRequest("POST", "/c2dm/register3", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Authorization", authz)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		got := rec.Body.String()
		switch {
		case rec.Code == http.StatusOK && (strings.HasPrefix(got, "token=") || strings.HasPrefix(got, "deleted=")):
		case rec.Code >= 400 && rec.Code < 500 && strings.HasPrefix(got, "Error="):
		default:
			t.Fatalf("register3(%q, %q) = %d %q", authz, body, rec.Code, got)
		}
	})
}

// FuzzCheckin sends arbitrary bodies to /checkin: 200 for empty or a JSON
// object, 400 otherwise, never 5xx.
func FuzzCheckin(f *testing.F) {
	db, err := bolt.Open(filepath.Join(f.TempDir(), "ccsd.db"), bolt.Options{})
	if err != nil {
		f.Fatal(err)
	}
	defer db.Close()
	h := New(Config{Devices: auth.NewDevices(db), Logger: zerolog.Nop()})
	for _, s := range []string{"", "{}", `{"a":[1,{}]}`, "[]", "null", "{"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		req := httptest.NewRequest("POST", "/checkin", strings.NewReader(body))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK && rec.Code != http.StatusBadRequest {
			t.Fatalf("checkin(%q) = %d %q", body, rec.Code, rec.Body.String())
		}
	})
}
