package bolt

import (
	"errors"
	"testing"

	"github.com/ccsd/ccsd/store"
)

func TestExpiryAndSweep(t *testing.T) {
	db, _ := openTest(t, Options{})
	const now = int64(1_000_000) // fixed clock: Pending and Sweep take nowMs
	var ms []store.Message
	for i, exp := range []int64{now - 10, 0, now + 10, now - 5, now} {
		m := msg("d1", "r1", string(rune('a'+i)))
		m.Expires = exp
		if i == 3 {
			m.CollapseKey = "k"
		}
		ms = append(ms, m)
	}
	if err := db.Enqueue(ctx, &store.Enqueue{Messages: ms}); err != nil {
		t.Fatal(err)
	}
	for i, exp := range []int64{now - 1, now + 1} {
		if err := db.PushUpstream(ctx, &store.Upstream{SenderID: "s1", MessageID: string(rune('u' + i)), Expires: exp}); err != nil {
			t.Fatal(err)
		}
	}
	// Dedup records are written directly: Enqueue stamps them against the
	// wall clock, this test runs on a fixed one.
	putDedup := func(sender, id string, until int64) {
		t.Helper()
		err := db.update(ctx, func(tx txT) error {
			return tx.Bucket(bucketDedup).Put(compositeKey(sender, id), be64(until))
		})
		if err == nil {
			err = db.update(ctx, func(tx txT) error {
				return tx.Bucket(bucketExpiry).Put(expiryKey(until, kindDedup, sender, 0, id), nil)
			})
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	putDedup("s1", "x", now-3)
	putDedup("s1", "y", now+3)
	assertIndexes(t, db)

	p, _ := db.Pending("d1", 0, 0, now)
	if got := ids(p); len(got) != 3 || got[0] != "b" || got[1] != "c" || got[2] != "e" {
		t.Fatalf("Pending at now = %v, want [b c e] (expired skipped, Expires==now still live)", got)
	}
	if up, _ := db.PendingUpstream("s1", 0, 0, now); len(up) != 1 || up[0].MessageID != "v" {
		t.Fatalf("PendingUpstream at now = %+v", up)
	}
	if n, _ := db.QueueLen("d1"); n != 5 {
		t.Fatalf("QueueLen before sweep = %d", n)
	}

	st, err := db.Sweep(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	if st != (store.SweepStats{Messages: 2, Upstream: 1, Dedup: 1}) {
		t.Fatalf("Sweep = %+v", st)
	}
	if n, _ := db.QueueLen("d1"); n != 3 {
		t.Fatalf("QueueLen after sweep = %d", n)
	}
	if up, _ := db.PendingUpstream("s1", 0, 0, 0); len(up) != 1 {
		t.Fatalf("upstream after sweep = %+v", up)
	}
	assertIndexes(t, db)
	// Nothing else expired: a second sweep does nothing.
	if st, _ := db.Sweep(ctx, now); st != (store.SweepStats{}) {
		t.Fatalf("second Sweep = %+v", st)
	}
	// Later everything with an expiry goes; the message without one stays.
	if st, _ := db.Sweep(ctx, now+100); st != (store.SweepStats{Messages: 2, Upstream: 1, Dedup: 1}) {
		t.Fatalf("later Sweep = %+v", st)
	}
	p, _ = db.Pending("d1", 0, 0, now+100)
	if got := ids(p); len(got) != 1 || got[0] != "b" {
		t.Fatalf("after later sweep: %v", got)
	}
	if _, err := db.Ack(ctx, "d1", 1, nil); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Ack of swept message: %v", err)
	}
	assertIndexes(t, db)
	err = db.view(func(tx txT) error {
		if k, _ := tx.Bucket(bucketExpiry).Cursor().First(); k != nil {
			t.Errorf("expiry index not empty: %x", k)
		}
		if k, _ := tx.Bucket(bucketDedup).Cursor().First(); k != nil {
			t.Errorf("dedup not empty: %x", k)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

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
