package bolt

import (
	"fmt"
	"testing"

	"go.etcd.io/bbolt"

	"github.com/ccsd/ccsd/store"
)

// enqueueExp queues one message expiring at exp (0: never) to dev.
func enqueueExp(t *testing.T, db *DB, dev string, exp int64) uint64 {
	t.Helper()
	m := msg(dev, "r"+dev, fmt.Sprint("e", exp))
	m.Expires = exp
	e := &store.Enqueue{Messages: []store.Message{m}}
	if err := db.Enqueue(ctx, e); err != nil {
		t.Fatal(err)
	}
	return e.Messages[0].Seq
}

func bound(t *testing.T, db *DB, dev string) (qb queueBound, ok bool) {
	t.Helper()
	db.view(func(tx *bbolt.Tx) error { qb, ok = readBound(tx, dev); return nil })
	return qb, ok
}

func pendingExp(t *testing.T, db *DB, dev string) []int64 {
	t.Helper()
	ms, err := db.Pending(dev, 0, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []int64
	for _, m := range ms {
		out = append(out, m.Expires)
	}
	return out
}

// TestQueueExpiryBound: expiring messages write no expiry entry each, only
// their device's bound, lowered by an earlier expiry and left (still a
// lower bound) by acks; a sweep after it deletes exactly what expired and
// sets the bound to the earliest expiry left, or removes it.
func TestQueueExpiryBound(t *testing.T) {
	db, _ := openTest(t, Options{})
	first := enqueueExp(t, db, "d1", 500)
	for _, exp := range []int64{600, 700, 0, 800} {
		enqueueExp(t, db, "d1", exp)
	}
	enqueueExp(t, db, "d1", 400) // earlier than the bound: lowers it
	if qb, ok := bound(t, db, "d1"); !ok || qb.bound != 400 {
		t.Fatalf("bound = %+v, %v; want 400", qb, ok)
	}
	db.view(func(tx *bbolt.Tx) error {
		if n := tx.Bucket(bucketExpiry).Stats().KeyN; n != 0 {
			t.Errorf("%d per-message expiry entries", n)
		}
		return nil
	})
	if _, err := db.Ack(ctx, "d1", first, nil); err != nil {
		t.Fatal(err)
	}
	assertIndexes(t, db)
	// At 450 the message of 400 has expired: the walk deletes it and sets
	// the bound to the earliest expiry left, 600 (500 was acked).
	st, err := db.Sweep(ctx, 450)
	if err != nil || st.Messages != 1 || st.More {
		t.Fatalf("Sweep(450) = %+v, %v; want the message of 400", st, err)
	}
	if qb, _ := bound(t, db, "d1"); qb.bound != 600 {
		t.Fatalf("bound after the sweep = %+v, want 600 (500 was acked)", qb)
	}
	if st, err := db.Sweep(ctx, 599); err != nil || st.Messages != 0 {
		t.Fatalf("Sweep before the bound = %+v, %v", st, err)
	}
	if st, err := db.Sweep(ctx, 750); err != nil || st.Messages != 2 {
		t.Fatalf("Sweep(750) = %+v, %v; want 600 and 700", st, err)
	}
	if got := pendingExp(t, db, "d1"); fmt.Sprint(got) != "[0 800]" {
		t.Fatalf("left %v, want [0 800]", got)
	}
	if st, err := db.Sweep(ctx, 1000); err != nil || st.Messages != 1 {
		t.Fatalf("Sweep(1000) = %+v, %v", st, err)
	}
	if qb, ok := bound(t, db, "d1"); ok {
		t.Fatalf("bound %+v left for a queue where nothing expires", qb)
	}
	assertIndexes(t, db)
}

// TestQueueExpiryResume: a sweep whose budget ends inside a queue stores
// where it stopped; the next calls go on from there until every expired
// message is deleted and none that lives.
func TestQueueExpiryResume(t *testing.T) {
	old := sweepLimit
	sweepLimit = 3
	t.Cleanup(func() { sweepLimit = old })
	db, _ := openTest(t, Options{})
	for i := range 10 {
		enqueueExp(t, db, "d1", int64(1000-i*100)) // 1000 ... 100: the last expire first
	}
	calls := 0
	for more := true; more; calls++ {
		st, err := db.Sweep(ctx, 550)
		if err != nil {
			t.Fatal(err)
		}
		more = st.More
		assertIndexes(t, db)
		if calls > 10 {
			t.Fatal("the sweep never ends")
		}
	}
	if calls < 3 {
		t.Fatalf("%d sweep calls for 10 records with a budget of 3: no resume", calls)
	}
	if got := pendingExp(t, db, "d1"); fmt.Sprint(got) != "[1000 900 800 700 600]" {
		t.Fatalf("left %v after %d calls", got, calls)
	}
	if qb, _ := bound(t, db, "d1"); qb.bound != 600 || qb.resume != 0 {
		t.Fatalf("bound = %+v, want 600 and no resume", qb)
	}
}

// TestQueueExpiryDeviceGone: the bound of a device deleted with its queue
// is dropped by the next sweep after it.
func TestQueueExpiryDeviceGone(t *testing.T) {
	db, _ := openTest(t, Options{})
	enqueueExp(t, db, "d1", 100)
	err := db.update(ctx, func(tx *bbolt.Tx) error { return tx.Bucket(bucketQueues).DeleteBucket([]byte("d1")) })
	if err != nil {
		t.Fatal(err)
	}
	if st, err := db.Sweep(ctx, 200); err != nil || st.Messages != 0 {
		t.Fatalf("Sweep = %+v, %v", st, err)
	}
	if qb, ok := bound(t, db, "d1"); ok {
		t.Fatalf("bound %+v left", qb)
	}
}
