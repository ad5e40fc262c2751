package auth

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"
)

// TestLoginMarksFirstLoginOnly: Login records a device's first login with
// one store write; later logins write nothing; bad credentials write
// nothing and fail as Authenticate does.
func TestLoginMarksFirstLoginOnly(t *testing.T) {
	db := openStore(t)
	d := NewDevices(db)
	ctx := context.Background()
	id, tok, err := d.Checkin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Authenticate(ctx, id, tok); err != nil {
		t.Fatal(err)
	}
	if rec, _ := db.Device(id); rec.LoggedIn {
		t.Fatal("Authenticate (the HTTP check) marked the device logged in")
	}
	before := db.Stats().Ops
	for range 3 {
		if got, err := d.Login(ctx, id, tok); err != nil || got != id {
			t.Fatalf("Login = %q, %v", got, err)
		}
	}
	if n := db.Stats().Ops - before; n != 1 {
		t.Errorf("three logins cost %d store writes, want 1 (the first)", n)
	}
	if rec, _ := db.Device(id); !rec.LoggedIn {
		t.Error("device not marked logged in")
	}
	before = db.Stats().Ops
	if _, err := d.Login(ctx, id, tok+"x"); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("Login(wrong token): %v, want ErrBadCredentials", err)
	}
	if db.Stats().Ops != before {
		t.Error("a failed login wrote to the store")
	}
}

// TestRegisterCap: past MaxRegistrations a new app is refused with
// ErrTooManyRegistrations; an app already registered keeps its token.
func TestRegisterCap(t *testing.T) {
	db := openStore(t)
	senders := NewSenders(db)
	d := NewDevicesWithLimits(db, DeviceLimits{MaxRegistrations: 3})
	ctx := context.Background()
	snd, _, _ := senders.Create("")
	id, _, _ := d.Checkin(ctx)
	var first string
	for i := range 3 {
		reg, err := d.Register(ctx, id, snd.ID, "app."+strconv.Itoa(i))
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = reg
		}
	}
	if _, err := d.Register(ctx, id, snd.ID, "app.3"); !errors.Is(err, ErrTooManyRegistrations) {
		t.Fatalf("4th app: %v, want ErrTooManyRegistrations", err)
	}
	if reg, err := d.Register(ctx, id, snd.ID, "app.0"); err != nil || reg != first {
		t.Fatalf("re-register at the cap = %q, %v; want %q", reg, err, first)
	}
}

// TestExpireUnused: after UnusedTTL, a device that never logged in and one
// without an app are deleted (their credentials stop working); one that
// did both stays; with no TTL nothing is deleted.
func TestExpireUnused(t *testing.T) {
	db := openStore(t)
	senders := NewSenders(db)
	d := NewDevicesWithLimits(db, DeviceLimits{UnusedTTL: time.Hour})
	ctx := context.Background()
	snd, _, _ := senders.Create("")
	type cred struct{ id, tok string }
	checkin := func() cred {
		id, tok, err := d.Checkin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return cred{id, tok}
	}
	silent, appless, used := checkin(), checkin(), checkin()
	if _, err := d.Register(ctx, silent.id, snd.ID, "a"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []cred{appless, used} {
		if _, err := d.Login(ctx, c.id, c.tok); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := d.Register(ctx, used.id, snd.ID, "a"); err != nil {
		t.Fatal(err)
	}

	if n, err := d.ExpireUnused(ctx); err != nil || n != 0 {
		t.Fatalf("ExpireUnused before the TTL = %d, %v", n, err)
	}
	d.now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	if n, err := NewDevicesWithLimits(db, DeviceLimits{}).ExpireUnused(ctx); err != nil || n != 0 {
		t.Fatalf("ExpireUnused without a TTL = %d, %v", n, err)
	}
	if n, err := d.ExpireUnused(ctx); err != nil || n != 2 {
		t.Fatalf("ExpireUnused after the TTL = %d, %v; want 2", n, err)
	}
	for _, c := range []cred{silent, appless} {
		if _, err := d.Authenticate(ctx, c.id, c.tok); !errors.Is(err, ErrBadCredentials) {
			t.Errorf("expired device %s authenticates: %v", c.id, err)
		}
	}
	if _, err := d.Authenticate(ctx, used.id, used.tok); err != nil {
		t.Errorf("used device was expired: %v", err)
	}
}
