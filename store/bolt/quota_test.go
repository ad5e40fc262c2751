package bolt

import (
	"errors"
	"slices"
	"strconv"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/ccsd/ccsd/store"
)

// TestUpstreamUsage: the in-memory usage of a sender's upstream queue
// follows every push, receipt, ack and sweep, ignores a rolled-back write,
// and is rebuilt from the file at the next Open.
func TestUpstreamUsage(t *testing.T) {
	db, path := openTest(t, Options{})
	now := time.Now().UnixMilli()
	var size int64
	for i := range 5 {
		u := &store.Upstream{SenderID: "s1", MessageID: "u" + strconv.Itoa(i), Expires: now + 60000, Payload: []byte(`{"n":` + strconv.Itoa(i) + `}`)}
		if i == 4 {
			u.Expires = now - 1 // swept below
		}
		size += int64(len(encodeUpstream(u)))
		if err := db.PushUpstream(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	if got := db.UpstreamUsage("s1"); got != (store.QueueUsage{Messages: 5, Bytes: size}) {
		t.Fatalf("after 5 pushes: %+v, want {5 %d}", got, size)
	}
	if got := db.UpstreamUsage("s2"); got != (store.QueueUsage{}) {
		t.Fatalf("other sender: %+v", got)
	}
	e := &store.Enqueue{Messages: []store.Message{msg("d1", "r1", "m1")}}
	if err := db.Enqueue(ctx, e); err != nil {
		t.Fatal(err)
	}
	rc := &store.Upstream{SenderID: "s1", MessageID: "dr2:m1", Payload: []byte(`{}`)}
	if _, err := db.Ack(ctx, "d1", e.Messages[0].Seq, rc); err != nil {
		t.Fatal(err)
	}
	size += int64(len(encodeUpstream(rc)))
	if got := db.UpstreamUsage("s1"); got.Messages != 6 || got.Bytes != size {
		t.Fatalf("after a receipt: %+v, want {6 %d}", got, size)
	}
	// A write that pushes, then fails dirty, is rolled back: not counted.
	err := db.update(ctx, func(tx *bbolt.Tx) error {
		u := &store.Upstream{SenderID: "s1", MessageID: "ghost", Payload: []byte("{}")}
		if err := pushUpstream(tx, u, encodeUpstream(u)); err != nil {
			return err
		}
		return errors.New("boom")
	})
	if err == nil {
		t.Fatal("the failing write succeeded")
	}
	if got := db.UpstreamUsage("s1"); got.Messages != 6 {
		t.Fatalf("a rolled-back push was counted: %+v", got)
	}
	if err := db.AckUpstream(ctx, "s1", 1); err != nil {
		t.Fatal(err)
	}
	if st, err := db.Sweep(ctx, now); err != nil || st.Upstream != 1 {
		t.Fatalf("sweep: %+v, %v", st, err)
	}
	got := db.UpstreamUsage("s1")
	if got.Messages != 4 {
		t.Fatalf("after an ack and a sweep: %+v, want 4 messages", got)
	}
	db.Close()
	db2, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	if again := db2.UpstreamUsage("s1"); again != got {
		t.Fatalf("after reopen: %+v, want %+v", again, got)
	}
}

// overflowing returns an Enqueue of one message of reg on d1 bounded at max
// per registration, whose overflow message is "deleted-N".
func overflowing(reg, id string, max int) *store.Enqueue {
	m := msg("d1", reg, id)
	m.MaxQueued = max
	return &store.Enqueue{Messages: []store.Message{m},
		Overflow: func(m *store.Message) store.Message {
			return store.Message{MessageID: "deleted-" + m.MessageID, Payload: []byte(`{"message_type":"deleted_messages"}`)}
		}}
}

// TestEnqueueOverflowCountsSurviveReopen: what bolt adds to the contract
// suite's EnqueueOverflow (storetest): the per-registration counts that
// decide an overflow are on disk, so a message past the bound after a
// reopen overflows; after it the registration counts from zero, a second
// overflow replaces the first deleted_messages, and the counts end exact.
func TestEnqueueOverflowCountsSurviveReopen(t *testing.T) {
	db, path := openTest(t, Options{})
	const max = 3
	enq := func(db *DB, reg, id string) *store.Enqueue {
		t.Helper()
		e := overflowing(reg, id, max)
		if err := db.Enqueue(ctx, e); err != nil {
			t.Fatal(err)
		}
		return e
	}
	enq(db, "r2", "other") // another app on the same device
	for i := range max {
		enq(db, "r1", "a"+strconv.Itoa(i))
	}
	db.Close()
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { db.Close() }()
	if e := enq(db, "r1", "a3"); e.Discarded != max+1 {
		t.Fatalf("the message past the bound after a reopen discarded %d, want %d (a0-a3): the count was lost", e.Discarded, max+1)
	}
	for i := range max { // the deleted_messages does not count
		if e := enq(db, "r1", "b"+strconv.Itoa(i)); e.Discarded != 0 {
			t.Fatalf("b%d discarded %d after the overflow", i, e.Discarded)
		}
	}
	if e := enq(db, "r1", "b3"); e.Discarded != max+1 {
		t.Fatalf("the second overflow discarded %d, want %d (b0-b3)", e.Discarded, max+1)
	}
	want := []string{"other", "deleted-b3"}
	p, _ := db.Pending("d1", 0, 0, 0)
	if !slices.Equal(ids(p), want) {
		t.Fatalf("after a second overflow: %v, want %v", ids(p), want)
	}
	if _, err := db.Ack(ctx, "d1", p[1].Seq, nil); err != nil {
		t.Fatal(err)
	}
	if err := db.view(func(tx *bbolt.Tx) error {
		if n := regQueued(tx, "r1"); n != 0 {
			t.Errorf("r1 counts %d", n)
		}
		if n := regQueued(tx, "r2"); n != 1 {
			t.Errorf("r2 counts %d, want 1", n)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestRegQueuedBuiltForOldDatabase: a database written before the
// per-registration counts existed gets them at Open.
func TestRegQueuedBuiltForOldDatabase(t *testing.T) {
	db, path := openTest(t, Options{})
	for i := range 4 {
		if err := db.Enqueue(ctx, &store.Enqueue{Messages: []store.Message{msg("d1", "r1", "m"+strconv.Itoa(i))}}); err != nil {
			t.Fatal(err)
		}
	}
	// Make it look like an old file: no counts, no mark.
	if err := db.update(ctx, func(tx *bbolt.Tx) error {
		if err := tx.DeleteBucket(bucketRegQueued); err != nil {
			return err
		}
		if _, err := tx.CreateBucket(bucketRegQueued); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Delete(keyRegQueued)
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if e := overflowing("r1", "m4", 4); db.Enqueue(ctx, e) != nil || e.Discarded != 5 {
		t.Fatalf("the fifth message over a bound of 4 discarded %d, want 5", e.Discarded)
	}
}
