package auth

import (
	"context"
	"crypto/sha256"
	"errors"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/ccsd/ccsd/store"
	"github.com/ccsd/ccsd/store/bolt"
)

// openStore opens a real store in a fresh temporary directory and closes it
// when the test ends.
func openStore(t *testing.T) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "ccsd.db"), bolt.Options{})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

var (
	senderIDRe = regexp.MustCompile(`^[1-9][0-9]{11}$`)
	apiKeyRe   = regexp.MustCompile(`^AIza[A-Za-z0-9_-]{43}$`)
	regIDRe    = regexp.MustCompile(`^[A-Za-z0-9_-]{22}:APA91b[A-Za-z0-9_-]{43}$`)
	tokenRe    = regexp.MustCompile(`^[A-Za-z0-9_-]{32}$`)
)

func TestSenderCreateGeneratesIDAndKey(t *testing.T) {
	db := openStore(t)
	s := NewSenders(db)
	snd, key, err := s.Create("")
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if !senderIDRe.MatchString(snd.ID) {
		t.Errorf("sender id %q is not a 12-digit number", snd.ID)
	}
	if !apiKeyRe.MatchString(key) {
		t.Errorf("api key %q has the wrong shape", key)
	}
	if snd.Created.IsZero() || snd.Revoked {
		t.Errorf("new sender = %+v, want created and not revoked", snd)
	}
	// The store keeps only the SHA-256 digest, never the key.
	rec, err := db.Sender(snd.ID)
	if err != nil {
		t.Fatalf("store.Sender: %v", err)
	}
	want := sha256.Sum256([]byte(key))
	if string(rec.KeyHash) != string(want[:]) {
		t.Errorf("stored hash is not SHA-256 of the key")
	}
	if strings.Contains(string(rec.KeyHash), key) {
		t.Errorf("key stored in clear")
	}
	// Two creations give different ids and keys.
	snd2, key2, err := s.Create("")
	if err != nil {
		t.Fatalf("second Create: %v", err)
	}
	if snd2.ID == snd.ID || key2 == key {
		t.Errorf("second sender reused id or key")
	}
}

func TestSenderCreateExplicitID(t *testing.T) {
	s := NewSenders(openStore(t))
	snd, _, err := s.Create("my-project.1")
	if err != nil || snd.ID != "my-project.1" {
		t.Fatalf("Create(my-project.1) = %+v, %v", snd, err)
	}
	if _, _, err := s.Create("my-project.1"); !errors.Is(err, ErrSenderExists) {
		t.Errorf("duplicate Create: err = %v, want ErrSenderExists", err)
	}
	for _, bad := range []string{"a@b", "a/b", "with space", strings.Repeat("1", 65), "é", "a:b"} {
		if _, _, err := s.Create(bad); !errors.Is(err, ErrInvalidSenderID) {
			t.Errorf("Create(%q): err = %v, want ErrInvalidSenderID", bad, err)
		}
	}
}

func TestSenderAuthenticate(t *testing.T) {
	s := NewSenders(openStore(t))
	ctx := context.Background()
	snd, key, err := s.Create("")
	if err != nil {
		t.Fatal(err)
	}
	other, otherKey, err := s.Create("")
	if err != nil {
		t.Fatal(err)
	}
	if id, err := s.Authenticate(ctx, snd.ID, key); err != nil || id != snd.ID {
		t.Fatalf("Authenticate(good) = %q, %v", id, err)
	}
	bad := []struct{ name, user, pass string }{
		{"wrong key", snd.ID, key + "x"},
		{"other sender's key", snd.ID, otherKey},
		{"empty key", snd.ID, ""},
		{"unknown sender", "999999999999", key},
		{"empty user", "", key},
	}
	for _, c := range bad {
		if _, err := s.Authenticate(ctx, c.user, c.pass); !errors.Is(err, ErrBadCredentials) {
			t.Errorf("%s: err = %v, want ErrBadCredentials", c.name, err)
		}
	}
	// AuthenticateKey finds the sender from the key alone.
	if id, err := s.AuthenticateKey(ctx, "", otherKey); err != nil || id != other.ID {
		t.Errorf("AuthenticateKey(other) = %q, %v; want %q", id, err, other.ID)
	}
	if id, err := s.AuthenticateKey(ctx, other.ID, otherKey); err != nil || id != other.ID {
		t.Errorf("AuthenticateKey(other, with id) = %q, %v", id, err)
	}
	if _, err := s.AuthenticateKey(ctx, snd.ID, otherKey); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("AuthenticateKey with another sender's id: err = %v", err)
	}
	if _, err := s.AuthenticateKey(ctx, "", "AIzanope"); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("AuthenticateKey(unknown key): err = %v", err)
	}
	// A cancelled context is an internal error, not bad credentials.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Authenticate(cctx, snd.ID, key); err == nil || errors.Is(err, ErrBadCredentials) {
		t.Errorf("cancelled ctx: err = %v, want context error", err)
	}
}

func TestSenderRevokeAndList(t *testing.T) {
	s := NewSenders(openStore(t))
	ctx := context.Background()
	a, keyA, _ := s.Create("a")
	b, keyB, _ := s.Create("b")
	if err := s.Revoke(a.ID); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	if err := s.Revoke(a.ID); err != nil {
		t.Errorf("second Revoke: %v, want nil (idempotent)", err)
	}
	if err := s.Revoke("nobody"); !errors.Is(err, ErrUnknownSender) {
		t.Errorf("Revoke(unknown): %v, want ErrUnknownSender", err)
	}
	if _, err := s.Authenticate(ctx, a.ID, keyA); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("revoked sender authenticated: err = %v", err)
	}
	if _, err := s.AuthenticateKey(ctx, "", keyA); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("revoked sender's key accepted by AuthenticateKey: err = %v", err)
	}
	if _, err := s.Authenticate(ctx, b.ID, keyB); err != nil {
		t.Errorf("other sender affected by revoke: %v", err)
	}
	list, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, x := range list {
		got[x.ID] = x.Revoked
	}
	if len(list) != 2 || got["a"] != true || got["b"] != false {
		t.Errorf("List = %+v, want a revoked and b live", list)
	}
	if g, err := s.Get("a"); err != nil || !g.Revoked {
		t.Errorf("Get(a) = %+v, %v", g, err)
	}
	if _, err := s.Get("zzz"); !errors.Is(err, ErrUnknownSender) {
		t.Errorf("Get(unknown): %v", err)
	}
}

func TestDeviceCheckinAndAuthenticate(t *testing.T) {
	db := openStore(t)
	d := NewDevices(db)
	ctx := context.Background()
	id, tok, err := d.Checkin(ctx)
	if err != nil {
		t.Fatalf("Checkin: %v", err)
	}
	if v, err := strconv.ParseUint(id, 10, 64); err != nil || v == 0 {
		t.Errorf("android id %q is not a non-zero uint64", id)
	}
	if !tokenRe.MatchString(tok) {
		t.Errorf("security token %q has the wrong shape", tok)
	}
	rec, err := db.Device(id)
	if err != nil {
		t.Fatalf("store.Device: %v", err)
	}
	if want := sha256.Sum256([]byte(tok)); string(rec.SecretHash) != string(want[:]) {
		t.Errorf("stored secret is not SHA-256 of the token")
	}
	id2, tok2, err := d.Checkin(ctx)
	if err != nil || id2 == id || tok2 == tok {
		t.Fatalf("second Checkin = %q, %q, %v: want fresh values", id2, tok2, err)
	}
	if got, err := d.Authenticate(ctx, id, tok); err != nil || got != id {
		t.Fatalf("Authenticate(good) = %q, %v", got, err)
	}
	for _, c := range []struct{ user, pass string }{{id, tok2}, {id, ""}, {"12345", tok}, {"", tok}} {
		if _, err := d.Authenticate(ctx, c.user, c.pass); !errors.Is(err, ErrBadCredentials) {
			t.Errorf("Authenticate(%q, %q): %v, want ErrBadCredentials", c.user, c.pass, err)
		}
	}
}

func TestDeviceRegisterUnregister(t *testing.T) {
	db := openStore(t)
	senders, devices := NewSenders(db), NewDevices(db)
	ctx := context.Background()
	snd, _, _ := senders.Create("")
	dev, _, _ := devices.Checkin(ctx)

	reg, err := devices.Register(ctx, dev, snd.ID, "com.example.app")
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	if !regIDRe.MatchString(reg) {
		t.Errorf("registration id %q has the wrong shape", reg)
	}
	stored, err := db.Registration(reg)
	if err != nil || stored.DeviceID != dev || stored.SenderID != snd.ID || stored.App != "com.example.app" {
		t.Errorf("store.Registration(%s) = %+v, %v", reg, stored, err)
	}
	// Registering again gives the same token; another app a different one.
	if again, err := devices.Register(ctx, dev, snd.ID, "com.example.app"); err != nil || again != reg {
		t.Errorf("re-Register = %q, %v; want %q", again, err, reg)
	}
	other, err := devices.Register(ctx, dev, snd.ID, "com.example.other")
	if err != nil || other == reg {
		t.Errorf("Register(other app) = %q, %v", other, err)
	}

	if err := devices.Unregister(ctx, dev, snd.ID, "com.example.app"); err != nil {
		t.Fatalf("Unregister: %v", err)
	}
	if _, err := db.Registration(reg); !errors.Is(err, store.ErrUnregistered) && !errors.Is(err, store.ErrNotFound) {
		t.Errorf("registration still live after Unregister: %v", err)
	}
	if err := devices.Unregister(ctx, dev, snd.ID, "com.example.app"); err != nil {
		t.Errorf("second Unregister: %v, want nil (idempotent)", err)
	}
	fresh, err := devices.Register(ctx, dev, snd.ID, "com.example.app")
	if err != nil || fresh == reg {
		t.Errorf("Register after Unregister = %q, %v; want a new token", fresh, err)
	}
	if _, err := db.Registration(other); err != nil {
		t.Errorf("other app's registration harmed: %v", err)
	}
}

func TestDeviceRegisterErrors(t *testing.T) {
	db := openStore(t)
	senders, devices := NewSenders(db), NewDevices(db)
	ctx := context.Background()
	snd, _, _ := senders.Create("")
	gone, _, _ := senders.Create("")
	if err := senders.Revoke(gone.ID); err != nil {
		t.Fatal(err)
	}
	dev, _, _ := devices.Checkin(ctx)

	cases := []struct {
		name, dev, sender, app string
		want                   error
	}{
		{"unknown sender", dev, "424242424242", "app", ErrUnknownSender},
		{"revoked sender", dev, gone.ID, "app", ErrSenderRevoked},
		{"unknown device", "77", snd.ID, "app", ErrUnknownDevice},
		{"empty app", dev, snd.ID, "", ErrInvalidParameters},
		{"empty sender", dev, "", "app", ErrInvalidParameters},
		{"empty device", "", snd.ID, "app", ErrInvalidParameters},
		{"app with space", dev, snd.ID, "a b", ErrInvalidParameters},
		{"app with control", dev, snd.ID, "a\x00b", ErrInvalidParameters},
		{"app too long", dev, snd.ID, strings.Repeat("a", 256), ErrInvalidParameters},
		{"app not utf-8", dev, snd.ID, "a\xffb", ErrInvalidParameters},
	}
	for _, c := range cases {
		if _, err := devices.Register(ctx, c.dev, c.sender, c.app); !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
		}
	}
	if err := devices.Unregister(ctx, dev, snd.ID, ""); !errors.Is(err, ErrInvalidParameters) {
		t.Errorf("Unregister(empty app): %v", err)
	}
	// Unregistering for a revoked sender works (nothing registered: no-op).
	if err := devices.Unregister(ctx, dev, gone.ID, "app"); err != nil {
		t.Errorf("Unregister(revoked sender): %v", err)
	}
}

func TestClosedStoreIsInternalError(t *testing.T) {
	db := openStore(t)
	senders, devices := NewSenders(db), NewDevices(db)
	ctx := context.Background()
	snd, key, _ := senders.Create("")
	dev, tok, _ := devices.Checkin(ctx)
	db.Close()

	if _, err := senders.Authenticate(ctx, snd.ID, key); err == nil || errors.Is(err, ErrBadCredentials) {
		t.Errorf("sender Authenticate on closed store: %v, want internal error", err)
	}
	if _, err := devices.Authenticate(ctx, dev, tok); err == nil || errors.Is(err, ErrBadCredentials) {
		t.Errorf("device Authenticate on closed store: %v, want internal error", err)
	}
	if _, _, err := devices.Checkin(ctx); err == nil {
		t.Errorf("Checkin on closed store succeeded")
	}
	if _, _, err := senders.Create(""); err == nil {
		t.Errorf("Create on closed store succeeded")
	}
	if _, err := devices.Register(ctx, dev, snd.ID, "app"); err == nil ||
		errors.Is(err, ErrUnknownSender) || errors.Is(err, ErrUnknownDevice) {
		t.Errorf("Register on closed store: %v, want internal error", err)
	}
}

func TestValidSenderID(t *testing.T) {
	for _, ok := range []string{"1", "123456789012", "a.b_c-D", strings.Repeat("x", 64)} {
		if !ValidSenderID(ok) {
			t.Errorf("ValidSenderID(%q) = false", ok)
		}
	}
	for _, bad := range []string{"", "a b", "a@b", "a/b", strings.Repeat("x", 65), "\x00"} {
		if ValidSenderID(bad) {
			t.Errorf("ValidSenderID(%q) = true", bad)
		}
	}
}

func TestRandomDigits(t *testing.T) {
	for i := 0; i < 1000; i++ {
		if s := randomDigits(12); !senderIDRe.MatchString(s) {
			t.Fatalf("randomDigits(12) = %q", s)
		}
	}
}
