package bolt

import (
	"slices"
	"strconv"
	"testing"

	"go.etcd.io/bbolt"

	"github.com/ccsd/ccsd/store"
)

// TestRegCollapseBuiltForOldDatabase: a database written before the
// regcollapse index existed gets it at Open, so its queued keys count
// toward the bound and the oldest is the one evicted.
func TestRegCollapseBuiltForOldDatabase(t *testing.T) {
	db, path := openTest(t, Options{})
	for i := range 4 {
		m := msg("d1", "r1", "k"+strconv.Itoa(i))
		m.CollapseKey = m.MessageID
		if err := db.Enqueue(ctx, &store.Enqueue{Messages: []store.Message{m}}); err != nil {
			t.Fatal(err)
		}
	}
	// Make it look like an old file: no index, no mark.
	if err := db.update(ctx, func(tx *bbolt.Tx) error {
		if err := tx.DeleteBucket(bucketRegCollapse); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Delete(keyRegCollapse)
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	assertIndexes(t, db)
	m := msg("d1", "r1", "k4")
	m.CollapseKey, m.MaxCollapseKeys = "k4", 4
	e := &store.Enqueue{Messages: []store.Message{m}}
	if err := db.Enqueue(ctx, e); err != nil || e.Evicted != 1 {
		t.Fatalf("a fifth key over a bound of 4: evicted %d, %v; want 1", e.Evicted, err)
	}
	p, _ := db.Pending("d1", 0, 0, 0)
	if got, want := ids(p), []string{"k1", "k2", "k3", "k4"}; !slices.Equal(got, want) {
		t.Fatalf("queued %v, want %v", got, want)
	}
}
