package bolt

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/ccsd/ccsd/store"
)

// assertTopicIndexes checks that topicsubs and regtopics hold the same
// pairs, each of a live registration of the topic's sender.
func assertTopicIndexes(t *testing.T, db *DB) {
	t.Helper()
	err := db.view(func(tx *bbolt.Tx) error {
		fromSubs := map[string]bool{}
		err := tx.Bucket(bucketTopicSubs).ForEach(func(k, v []byte) error {
			parts, reg, ok := splitParts(k, 2)
			if !ok {
				t.Errorf("topicsubs key %x does not split", k)
				return nil
			}
			if live, _ := liveRegOf(tx, parts[0], string(reg)); !live {
				t.Errorf("topicsubs lists %s on %s/%s: not a live registration of the sender", reg, parts[0], parts[1])
			}
			if rv := tx.Bucket(bucketRegTopics).Get(regTopicKey(string(reg), parts[1])); !bytes.Equal(rv, v) {
				t.Errorf("topicsubs %s/%s/%s has no matching regtopics entry", parts[0], parts[1], reg)
			}
			fromSubs[string(regTopicKey(string(reg), parts[1]))] = true
			return nil
		})
		if err != nil {
			return err
		}
		return tx.Bucket(bucketRegTopics).ForEach(func(k, _ []byte) error {
			if !fromSubs[string(k)] {
				t.Errorf("dangling regtopics entry %x", k)
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestSweepDevicesDropsSubscriptions: a device the sweep deletes takes its
// registrations' subscriptions with it.
func TestSweepDevicesDropsSubscriptions(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "ccsd.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	created := db.opts.Now().Add(-48 * time.Hour)
	if err := db.PutDevice(store.Device{ID: "d1", Created: created}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Register(store.Registration{ID: "r1", DeviceID: "d1", SenderID: "s1", App: "a"}); err != nil {
		t.Fatal(err)
	}
	if errs, err := db.Subscribe(ctx, "s1", "news", []string{"r1"}, 0); err != nil || errs[0] != nil {
		t.Fatal(errs, err)
	}
	// Never logged in: the sweep deletes it.
	st, err := db.SweepDevices(ctx, db.opts.Now())
	if err != nil || st.Devices != 1 {
		t.Fatalf("SweepDevices = %+v, %v", st, err)
	}
	if subs, _ := db.Subscribers("s1", "news", "", 0); len(subs) != 0 {
		t.Fatalf("subscribers after the sweep: %+v", subs)
	}
	assertTopicIndexes(t, db)
}

// TestSubscribersPageFromCursor: the page after a cursor near the end of a
// 3000-subscriber topic holds just what follows it, nothing of a topic
// whose name extends this one's ("bigger" after "big").
func TestSubscribersPageFromCursor(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "ccsd.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	var ids []string
	for i := range 3000 {
		ids = append(ids, fmt.Sprintf("r%05d", i))
	}
	err = db.update(ctx, func(tx *bbolt.Tx) error {
		for _, id := range ids {
			if err := tx.Bucket(bucketRegs).Put([]byte(id), encodeReg(&regRecord{Registration: store.Registration{ID: id, DeviceID: "d" + id, SenderID: "s1"}})); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(ids); i += 1000 {
		if _, err := db.Subscribe(ctx, "s1", "big", ids[i:i+1000], 0); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Subscribe(ctx, "s1", "bigger", ids[i:i+1000], 0); err != nil {
			t.Fatal(err)
		}
	}
	page, err := db.Subscribers("s1", "big", "r02997", 10)
	if err != nil || len(page) != 2 || page[0].ID != "r02998" || page[1].ID != "r02999" {
		t.Fatalf("last page = %+v, %v", page, err)
	}
	assertTopicIndexes(t, db)
}
