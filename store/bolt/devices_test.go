package bolt

import (
	"errors"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/ccsd/ccsd/store"
)

// TestDeviceLoggedIn: a new device is not logged in until marked; marking
// twice is harmless; an unknown device is ErrNotFound.
func TestDeviceLoggedIn(t *testing.T) {
	db, _ := openTest(t, Options{})
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
}

// TestLegacyDeviceRecords: a schema 1 database from before device expiry
// (no devcreated bucket, device records without LoggedIn) opens; its
// devices read as logged in and the device sweep never deletes them.
func TestLegacyDeviceRecords(t *testing.T) {
	db, path := openTest(t, Options{})
	db.Close()
	old := time.Now().Add(-48 * time.Hour)
	bdb, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = bdb.Update(func(tx *bbolt.Tx) error {
		if err := tx.DeleteBucket(bucketDevCreated); err != nil {
			return err
		}
		e := newEnc(32) // the layout before LoggedIn: ver | ID | SecretHash | Created
		e.str("legacy")
		e.bytes([]byte("h"))
		e.time(old)
		return tx.Bucket(bucketDevices).Put([]byte("legacy"), e.b)
	})
	bdb.Close()
	if err != nil {
		t.Fatal(err)
	}

	db, err = Open(path, Options{})
	if err != nil {
		t.Fatalf("reopen a database without devcreated: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	d, err := db.Device("legacy")
	if err != nil || !d.LoggedIn || !d.Created.Equal(old) || string(d.SecretHash) != "h" {
		t.Fatalf("legacy device = %+v, %v; want logged in", d, err)
	}
	st, err := db.SweepDevices(ctx, time.Now())
	if err != nil || st.Checked != 0 {
		t.Fatalf("SweepDevices = %+v, %v", st, err)
	}
	if _, err := db.Device("legacy"); err != nil {
		t.Fatalf("legacy device swept: %v", err)
	}
}

// TestSweepDevices: of the devices old enough, those that never logged in
// or have no live registration go with their registrations and queued
// messages; the others, and the young ones, stay.
func TestSweepDevices(t *testing.T) {
	db, _ := openTest(t, Options{})
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
	assertIndexes(t, db)

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
}

// TestSweepDevicesBounded: one call judges at most deviceSweepLimit
// devices and says More; the next call goes on.
func TestSweepDevicesBounded(t *testing.T) {
	db, _ := openTest(t, Options{})
	old := deviceSweepLimit
	deviceSweepLimit = 2
	t.Cleanup(func() { deviceSweepLimit = old })
	created := time.Now().Add(-time.Hour)
	for _, id := range []string{"1", "2", "3"} {
		if err := db.PutDevice(store.Device{ID: id, Created: created}); err != nil {
			t.Fatal(err)
		}
	}
	st, err := db.SweepDevices(ctx, time.Now())
	if err != nil || st.Devices != 2 || !st.More {
		t.Fatalf("first call = %+v, %v; want 2 deleted and More", st, err)
	}
	st, err = db.SweepDevices(ctx, time.Now())
	if err != nil || st.Devices != 1 || st.More {
		t.Fatalf("second call = %+v, %v; want 1 deleted, no More", st, err)
	}
}

// TestRegisterLimited: the bound counts live registrations of the device;
// a re-registration returns its token at the bound; unregistering frees a
// place; the device must exist.
func TestRegisterLimited(t *testing.T) {
	db, _ := openTest(t, Options{})
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
}

// TestTombstonesBounded: register and unregister in a loop keeps at most
// maxTombstones tombstones per device; the oldest go entirely, the live
// registration and other devices' tombstones stay.
func TestTombstonesBounded(t *testing.T) {
	db, _ := openTest(t, Options{})
	old := maxTombstones
	maxTombstones = 3
	t.Cleanup(func() { maxTombstones = old })
	churn := func(dev string, n int) []string {
		var ids []string
		for i := range n {
			id := dev + "-" + string(rune('a'+i))
			if _, err := db.Register(store.Registration{ID: id, DeviceID: dev, SenderID: "s", App: "app"}); err != nil {
				t.Fatal(err)
			}
			if err := db.Unregister(ctx, id); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, id)
		}
		return ids
	}
	other := churn("e", 1)
	ids := churn("d", 5)
	if _, err := db.Register(store.Registration{ID: "live", DeviceID: "d", SenderID: "s", App: "app"}); err != nil {
		t.Fatal(err)
	}
	for i, id := range ids {
		want := store.ErrUnregistered // the 3 most recent
		if i < 2 {
			want = store.ErrNotFound
		}
		if _, err := db.Registration(id); !errors.Is(err, want) {
			t.Errorf("tombstone %d (%s): %v, want %v", i, id, err, want)
		}
	}
	if _, err := db.Registration(other[0]); !errors.Is(err, store.ErrUnregistered) {
		t.Errorf("another device's tombstone: %v", err)
	}
	if _, err := db.Registration("live"); err != nil {
		t.Errorf("live registration: %v", err)
	}
	n := 0
	db.view(func(tx *bbolt.Tx) error {
		n = tx.Bucket(bucketTombstones).Stats().KeyN
		return nil
	})
	if n != 4 {
		t.Errorf("%d tombstone entries, want 3 for d and 1 for e", n)
	}
}
