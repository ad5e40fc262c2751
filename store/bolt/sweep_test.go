package bolt

import (
	"errors"
	"testing"

	"github.com/ccsd/ccsd/store"
)

func TestSweepBounded(t *testing.T) {
	old := sweepLimit
	sweepLimit = 3
	defer func() { sweepLimit = old }()
	db, _ := openTest(t, Options{})
	var ms []store.Message
	for i := range 7 {
		m := msg("d1", "r1", "m")
		m.Expires = int64(100 + i)
		ms = append(ms, m)
	}
	if err := db.Enqueue(ctx, &store.Enqueue{Messages: ms}); err != nil {
		t.Fatal(err)
	}
	var total []int
	for {
		st, err := db.Sweep(ctx, 1000)
		if err != nil {
			t.Fatal(err)
		}
		total = append(total, st.Messages)
		if !st.More {
			break
		}
	}
	if len(total) != 3 || total[0] != 3 || total[1] != 3 || total[2] != 1 {
		t.Fatalf("sweeps = %v, want [3 3 1]", total)
	}
	if n, _ := db.QueueLen("d1"); n != 0 {
		t.Fatalf("QueueLen = %d", n)
	}
}

// A stale dedup record replaced by Enqueue leaves no dangling index entry
// and is not deleted by the sweep of its old expiry.
func TestDedupRenewedThenSwept(t *testing.T) {
	db, _ := openTest(t, Options{})
	err := db.update(ctx, func(tx txT) error {
		if err := tx.Bucket(bucketDedup).Put(compositeKey("s1", "m1"), be64(5)); err != nil {
			return err
		}
		return tx.Bucket(bucketExpiry).Put(expiryKey(5, kindDedup, "s1", 0, "m1"), nil)
	})
	if err != nil {
		t.Fatal(err)
	}
	far := int64(1) << 60
	if err := db.Enqueue(ctx, &store.Enqueue{SenderID: "s1", MessageID: "m1", DedupUntil: far}); err != nil {
		t.Fatalf("stale record refused: %v", err)
	}
	assertIndexes(t, db)
	if st, _ := db.Sweep(ctx, 10); st.Dedup != 0 {
		t.Fatalf("sweep removed a renewed record: %+v", st)
	}
	if err := db.Enqueue(ctx, &store.Enqueue{SenderID: "s1", MessageID: "m1", DedupUntil: far}); !errors.Is(err, store.ErrDuplicate) {
		t.Fatalf("renewed record lost: %v", err)
	}
}
