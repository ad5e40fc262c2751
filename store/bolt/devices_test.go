package bolt

import (
	"errors"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/ccsd/ccsd/store"
)

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
