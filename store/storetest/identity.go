package storetest

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ccsd/ccsd/store"
)

var identityTests = []test{
	{"SenderGroupCopies", func(t *testing.T, x *env) {
		db := x.db
		created := time.Unix(1700000000, 7)
		if err := db.PutSender(store.Sender{ID: "s1", KeyHash: []byte("h"), Created: created}); err != nil {
			t.Fatal(err)
		}
		if s, err := db.Sender("s1"); err != nil || s.GroupCopies {
			t.Fatalf("new sender %+v, %v: GroupCopies must default to false", s, err)
		}
		s, err := db.SetGroupCopies("s1", true)
		if err != nil || !s.GroupCopies || s.ID != "s1" || string(s.KeyHash) != "h" || !s.Created.Equal(created) {
			t.Fatalf("SetGroupCopies(true) = %+v, %v", s, err)
		}
		if s, err := db.Sender("s1"); err != nil || !s.GroupCopies || string(s.KeyHash) != "h" {
			t.Fatalf("after SetGroupCopies(true): %+v, %v", s, err)
		}
		if err := db.RevokeSender("s1"); err != nil {
			t.Fatal(err)
		}
		if all, err := db.Senders(); err != nil || len(all) != 1 || !all[0].GroupCopies || !all[0].Revoked {
			t.Fatalf("revoke must keep the option: %+v, %v", all, err)
		}
		if s, err := db.SetGroupCopies("s1", false); err != nil || s.GroupCopies || !s.Revoked {
			t.Fatalf("SetGroupCopies(false) = %+v, %v", s, err)
		}
		if _, err := db.SetGroupCopies("nope", true); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("SetGroupCopies(nope): %v", err)
		}
	}},
	{"Senders", func(t *testing.T, x *env) {
		db, ctx := x.db, x.ctx
		_ = ctx
		now := time.Now()
		for _, id := range []string{"222", "111"} {
			if err := db.PutSender(store.Sender{ID: id, KeyHash: []byte("h" + id), Created: now}); err != nil {
				t.Fatal(err)
			}
		}
		if err := db.PutSender(store.Sender{ID: "111"}); !errors.Is(err, store.ErrExists) {
			t.Fatalf("duplicate PutSender: %v, want store.ErrExists", err)
		}
		s, err := db.Sender("111")
		if err != nil || !bytes.Equal(s.KeyHash, []byte("h111")) || !s.Created.Equal(now) || s.Revoked {
			t.Fatalf("store.Sender = %+v, %v", s, err)
		}
		if _, err := db.Sender("nope"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Sender(nope): %v", err)
		}
		if err := db.RevokeSender("222"); err != nil {
			t.Fatal(err)
		}
		if err := db.RevokeSender("nope"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("RevokeSender(nope): %v", err)
		}
		all, err := db.Senders()
		if err != nil || len(all) != 2 || all[0].ID != "111" || all[1].ID != "222" || !all[1].Revoked || all[0].Revoked {
			t.Fatalf("Senders = %+v, %v", all, err)
		}
	}},
	{"Devices", func(t *testing.T, x *env) {
		db, ctx := x.db, x.ctx
		_ = ctx
		if err := db.PutDevice(store.Device{ID: "d1", SecretHash: []byte("s")}); err != nil {
			t.Fatal(err)
		}
		if err := db.PutDevice(store.Device{ID: "d1"}); !errors.Is(err, store.ErrExists) {
			t.Fatalf("dup: %v", err)
		}
		d, err := db.Device("d1")
		if err != nil || string(d.SecretHash) != "s" || !d.Created.IsZero() {
			t.Fatalf("store.Device = %+v, %v", d, err)
		}
		if _, err := db.Device("d2"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Device(d2): %v", err)
		}
	}},
	{"Registrations", func(t *testing.T, x *env) {
		db, ctx := x.db, x.ctx
		_ = ctx
		r1 := store.Registration{ID: "r1", DeviceID: "d1", SenderID: "s1", App: "com.a", Created: time.Unix(100, 5)}
		got, err := db.Register(r1)
		if err != nil || got != r1 {
			t.Fatalf("Register = %+v, %v", got, err)
		}
		// Same (device, sender, app): the existing token comes back.
		got, err = db.Register(store.Registration{ID: "r2", DeviceID: "d1", SenderID: "s1", App: "com.a"})
		if err != nil || got.ID != "r1" {
			t.Fatalf("re-Register = %+v, %v; want r1", got, err)
		}
		if _, err := db.Registration("r2"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("r2 should not exist: %v", err)
		}
		// Taken id for another triple.
		if _, err := db.Register(store.Registration{ID: "r1", DeviceID: "d1", SenderID: "s2", App: "com.a"}); !errors.Is(err, store.ErrExists) {
			t.Fatalf("id clash: %v", err)
		}
		if got, err := db.FindRegistration("d1", "s1", "com.a"); err != nil || got.ID != "r1" {
			t.Fatalf("Find = %+v, %v", got, err)
		}
		if _, err := db.FindRegistration("d1", "s1", "com.b"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Find other app: %v", err)
		}
		if err := db.Unregister(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Unregister(nope): %v", err)
		}
		if err := db.Unregister(ctx, "r1"); err != nil {
			t.Fatal(err)
		}
		if err := db.Unregister(ctx, "r1"); err != nil {
			t.Fatalf("second Unregister: %v", err)
		}
		got, err = db.Registration("r1")
		if !errors.Is(err, store.ErrUnregistered) || got != r1 {
			t.Fatalf("Registration(r1) after unregister = %+v, %v", got, err)
		}
		if _, err := db.FindRegistration("d1", "s1", "com.a"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Find after unregister: %v", err)
		}
		// A new registration for the same triple gets a new token.
		got, err = db.Register(store.Registration{ID: "r3", DeviceID: "d1", SenderID: "s1", App: "com.a"})
		if err != nil || got.ID != "r3" {
			t.Fatalf("Register after unregister = %+v, %v", got, err)
		}
		if _, err := db.Register(store.Registration{ID: "r1", DeviceID: "d9", SenderID: "s1", App: "x"}); !errors.Is(err, store.ErrExists) {
			t.Fatalf("reusing a tombstoned id: %v", err)
		}
	}},
	// RegistrationsBatch: the batch lookup answers each id as Registration
	// would: live, unregistered (with its record), or unknown.
	{"RegistrationsBatch", func(t *testing.T, x *env) {
		db, ctx := x.db, x.ctx
		_ = ctx
		for _, id := range []string{"a", "b"} {
			if _, err := db.Register(store.Registration{ID: id, DeviceID: "dev-" + id, SenderID: "s", App: "app", Created: time.Now()}); err != nil {
				t.Fatal(err)
			}
		}
		if err := db.Unregister(context.Background(), "b"); err != nil {
			t.Fatal(err)
		}
		regs, errs, err := db.Registrations([]string{"a", "b", "nope"})
		if err != nil {
			t.Fatal(err)
		}
		if errs[0] != nil || regs[0].DeviceID != "dev-a" {
			t.Errorf("live: %+v %v", regs[0], errs[0])
		}
		if !errors.Is(errs[1], store.ErrUnregistered) || regs[1].DeviceID != "dev-b" {
			t.Errorf("unregistered: %+v %v", regs[1], errs[1])
		}
		if !errors.Is(errs[2], store.ErrNotFound) {
			t.Errorf("unknown: %v", errs[2])
		}
	}},
	// DeviceLoggedIn: a new device is not logged in until marked; marking
	// twice is harmless; an unknown device is ErrNotFound.
	{"DeviceLoggedIn", func(t *testing.T, x *env) {
		db, ctx := x.db, x.ctx
		_ = ctx
		if err := db.PutDevice(store.Device{ID: "d1", SecretHash: []byte("s"), Created: time.Now()}); err != nil {
			t.Fatal(err)
		}
		if d, err := db.Device("d1"); err != nil || d.LoggedIn {
			t.Fatalf("new device = %+v, %v; want not logged in", d, err)
		}
		for range 2 {
			if err := db.MarkDeviceLoggedIn(ctx, "d1"); err != nil {
				t.Fatal(err)
			}
		}
		if d, err := db.Device("d1"); err != nil || !d.LoggedIn || string(d.SecretHash) != "s" {
			t.Fatalf("marked device = %+v, %v", d, err)
		}
		if err := db.MarkDeviceLoggedIn(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("mark unknown device: %v, want store.ErrNotFound", err)
		}
	}},
	// SweepDevices: of the devices old enough, those that never logged in
	// or have no live registration go with their registrations and queued
	// messages; the others, and the young ones, stay.
	{"SweepDevices", func(t *testing.T, x *env) {
		db, ctx := x.db, x.ctx
		_ = ctx
		base := time.Now().Add(-time.Hour)
		put := func(id string, age time.Duration, loggedIn bool, apps ...string) {
			t.Helper()
			if err := db.PutDevice(store.Device{ID: id, SecretHash: []byte("s"), Created: base.Add(-age)}); err != nil {
				t.Fatal(err)
			}
			if loggedIn {
				if err := db.MarkDeviceLoggedIn(ctx, id); err != nil {
					t.Fatal(err)
				}
			}
			for _, app := range apps {
				if _, err := db.RegisterLimited(store.Registration{ID: id + "/" + app, DeviceID: id, SenderID: "s1", App: app}, 0); err != nil {
					t.Fatal(err)
				}
			}
		}
		put("silent", 3*time.Minute, false, "a", "b")          // registered, never logged in
		put("appless", 2*time.Minute, true)                    // logged in, no app
		put("real", time.Minute, true, "a")                    // logged in with an app
		put("young", -time.Minute, false)                      // created after the cutoff
		if err := db.Unregister(ctx, "silent/b"); err != nil { // a tombstone goes too
			t.Fatal(err)
		}
		if _, err := db.RegisterLimited(store.Registration{ID: "silent/b2", DeviceID: "silent", SenderID: "s1", App: "b"}, 0); err != nil {
			t.Fatal(err)
		}
		m := msg("silent", "silent/a", "m1")
		m.Expires, m.CollapseKey = base.Add(time.Hour).UnixMilli(), "k"
		if err := db.Enqueue(ctx, &store.Enqueue{Messages: []store.Message{m, msg("silent", "silent/b2", "m2")}}); err != nil {
			t.Fatal(err)
		}

		st, err := db.SweepDevices(ctx, base)
		if err != nil {
			t.Fatal(err)
		}
		want := store.DeviceSweepStats{Checked: 3, Devices: 2, Registrations: 2, Messages: 2}
		if st != want {
			t.Fatalf("SweepDevices = %+v, want %+v", st, want)
		}
		for _, id := range []string{"silent", "appless"} {
			if _, err := db.Device(id); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("device %s: %v, want deleted", id, err)
			}
		}
		for _, id := range []string{"real", "young"} {
			if _, err := db.Device(id); err != nil {
				t.Errorf("device %s: %v, want kept", id, err)
			}
		}
		for _, id := range []string{"silent/a", "silent/b", "silent/b2"} {
			if _, err := db.Registration(id); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("registration %s: %v, want deleted", id, err)
			}
		}
		if _, err := db.FindRegistration("silent", "s1", "a"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("index entry of a deleted registration: %v", err)
		}
		if _, err := db.Registration("real/a"); err != nil {
			t.Errorf("registration of a kept device: %v", err)
		}
		if n, err := db.QueueLen("silent"); err != nil || n != 0 {
			t.Errorf("queue of a deleted device: %d, %v", n, err)
		}

		// "real" was judged once: losing its app later does not bring it back
		// to the sweep.
		if err := db.Unregister(ctx, "real/a"); err != nil {
			t.Fatal(err)
		}
		if st, err := db.SweepDevices(ctx, base); err != nil || st != (store.DeviceSweepStats{}) {
			t.Fatalf("second sweep = %+v, %v; want nothing", st, err)
		}
		if _, err := db.Device("real"); err != nil {
			t.Errorf("device judged before was swept again: %v", err)
		}
	}},
	// RegisterLimited: the bound counts live registrations of the device;
	// a re-registration returns its token at the bound; unregistering frees a
	// place; the device must exist.
	{"RegisterLimited", func(t *testing.T, x *env) {
		db, ctx := x.db, x.ctx
		_ = ctx
		if err := db.PutDevice(store.Device{ID: "d", Created: time.Now()}); err != nil {
			t.Fatal(err)
		}
		reg := func(id, app string) (store.Registration, error) {
			return db.RegisterLimited(store.Registration{ID: id, DeviceID: "d", SenderID: "s", App: app}, 3)
		}
		for i, app := range []string{"a", "b", "c"} {
			if _, err := reg(string(rune('1'+i)), app); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := reg("4", "d"); !errors.Is(err, store.ErrTooManyRegistrations) {
			t.Fatalf("4th app: %v, want store.ErrTooManyRegistrations", err)
		}
		if r, err := reg("5", "b"); err != nil || r.ID != "2" {
			t.Fatalf("re-register at the bound = %+v, %v; want the existing id 2", r, err)
		}
		// Another device is not limited by d's registrations.
		if err := db.PutDevice(store.Device{ID: "e"}); err != nil {
			t.Fatal(err)
		}
		if _, err := db.RegisterLimited(store.Registration{ID: "6", DeviceID: "e", SenderID: "s", App: "a"}, 3); err != nil {
			t.Fatalf("other device: %v", err)
		}
		if err := db.Unregister(ctx, "1"); err != nil {
			t.Fatal(err)
		}
		if _, err := reg("7", "d"); err != nil {
			t.Fatalf("after an unregister: %v", err)
		}
		if _, err := db.RegisterLimited(store.Registration{ID: "8", DeviceID: "nope", SenderID: "s", App: "a"}, 3); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown device: %v, want store.ErrNotFound", err)
		}
	}},
}
