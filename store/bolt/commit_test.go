package bolt

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/ccsd/ccsd/store"
)

func TestGroupCommit(t *testing.T) {
	db, _ := openTest(t, Options{})
	const n = 2000
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dev := fmt.Sprintf("d%d", i%50)
			errs <- db.Enqueue(ctx, &store.Enqueue{SenderID: "s1", MessageID: fmt.Sprint(i), DedupUntil: time.Now().UnixMilli() + 60000,
				Messages: []store.Message{msg(dev, "r"+dev, fmt.Sprint(i))}})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	st := db.Stats()
	t.Logf("%d enqueues in %d commits (%.1f ops/commit)", st.Ops, st.Commits, float64(st.Ops)/float64(st.Commits))
	if st.Ops != n {
		t.Fatalf("Ops = %d, want %d", st.Ops, n)
	}
	if st.Commits >= n/4 {
		t.Fatalf("Commits = %d for %d concurrent writes: group commit is not batching", st.Commits, n)
	}
	total := 0
	for d := range 50 {
		q, _ := db.QueueLen(fmt.Sprintf("d%d", d))
		total += q
	}
	if total != n {
		t.Fatalf("queued %d, want %d", total, n)
	}
}

// A lone write commits at once, without waiting for a batch to fill.
func TestLoneWriteCommitsAtOnce(t *testing.T) {
	db, _ := openTest(t, Options{})
	for i := range 20 {
		if err := db.PushUpstream(ctx, &store.Upstream{SenderID: "s1", MessageID: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if st := db.Stats(); st.Commits != 20 || st.Ops != 20 {
		t.Fatalf("Stats = %+v, want 20 commits of one op", st)
	}
}

// runBatch submits every fn at once with a CommitDelay long enough that
// they share one commit, and returns their errors in order.
func runBatch(t *testing.T, db *DB, fns ...func() error) []error {
	t.Helper()
	errs := make([]error, len(fns))
	var wg sync.WaitGroup
	for i, fn := range fns {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = fn() }()
	}
	wg.Wait()
	return errs
}

func TestFailingOpDoesNotFailNeighbours(t *testing.T) {
	db, _ := openTest(t, Options{CommitDelay: 300 * time.Millisecond})
	until := time.Now().UnixMilli() + 60000
	enq := func(id, dev string) func() error {
		return func() error {
			return db.Enqueue(ctx, &store.Enqueue{SenderID: "s1", MessageID: id, DedupUntil: until, Messages: []store.Message{msg(dev, "r", id)}})
		}
	}
	errs := runBatch(t, db,
		enq("m1", "d1"), enq("m1", "d2"), enq("m2", "d3"),
		// A dirty failure: writes, then fails. Its write must vanish.
		func() error {
			return db.update(ctx, func(tx *bbolt.Tx) error {
				if err := tx.Bucket(bucketDevices).Put([]byte("ghost"), encodeDevice(&store.Device{ID: "ghost"})); err != nil {
					return err
				}
				return errors.New("boom")
			})
		},
		// A panicking op.
		func() error {
			return db.update(ctx, func(tx *bbolt.Tx) error {
				tx.Bucket(bucketDevices).Put([]byte("ghost2"), encodeDevice(&store.Device{ID: "ghost2"}))
				var m map[string]int
				m["x"] = 1
				return nil
			})
		},
		func() error { return db.PutDevice(store.Device{ID: "good"}) },
	)
	if st := db.Stats(); st.Commits != 1 {
		t.Fatalf("Commits = %d, want the whole batch in 1 (CommitDelay too short for this machine?)", st.Commits)
	}
	dups := 0
	for i, err := range errs[:2] {
		if errors.Is(err, store.ErrDuplicate) {
			dups++
		} else if err != nil {
			t.Errorf("enqueue %d: %v", i, err)
		}
	}
	if dups != 1 {
		t.Errorf("of two enqueues with one message id, %d got store.ErrDuplicate, want 1", dups)
	}
	if errs[2] != nil {
		t.Errorf("m2: %v", errs[2])
	}
	if errs[3] == nil || !strings.Contains(errs[3].Error(), "boom") {
		t.Errorf("dirty op: %v", errs[3])
	}
	if errs[4] == nil || !strings.Contains(errs[4].Error(), "panic") {
		t.Errorf("panicking op: %v", errs[4])
	}
	if errs[5] != nil {
		t.Errorf("PutDevice: %v", errs[5])
	}
	if st := db.Stats(); st.Ops != 3 {
		t.Errorf("Ops = %d, want 3", st.Ops)
	}
	for _, id := range []string{"ghost", "ghost2"} {
		if _, err := db.Device(id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("write of failed op %s survived: %v", id, err)
		}
	}
	if _, err := db.Device("good"); err != nil {
		t.Error(err)
	}
	n1, _ := db.QueueLen("d1")
	n2, _ := db.QueueLen("d2")
	n3, _ := db.QueueLen("d3")
	if n1+n2 != 1 || n3 != 1 {
		t.Errorf("queues d1=%d d2=%d d3=%d", n1, n2, n3)
	}
}

// blockCommitter submits an op that holds the committer inside its
// transaction until the returned release is called.
func blockCommitter(t *testing.T, db *DB) (release func() error) {
	t.Helper()
	entered, gate := make(chan struct{}), make(chan struct{})
	res := make(chan error, 1)
	go func() {
		res <- db.update(ctx, func(tx *bbolt.Tx) error {
			close(entered)
			<-gate
			return nil
		})
	}()
	<-entered
	return func() error { close(gate); return <-res }
}

func TestCancelWhileWaiting(t *testing.T) {
	db, _ := openTest(t, Options{MaxBatch: 1})
	release := blockCommitter(t, db)
	c, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	res := make(chan error, 1)
	go func() { res <- db.PushUpstream(c, &store.Upstream{SenderID: "s1", MessageID: "cancelled"}) }()
	if err := <-res; !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("cancelled PushUpstream: %v", err)
	}
	if err := release(); err != nil {
		t.Fatal(err)
	}
	// A later write goes through, and the cancelled one was never written.
	if err := db.PushUpstream(ctx, &store.Upstream{SenderID: "s1", MessageID: "later"}); err != nil {
		t.Fatal(err)
	}
	up, _ := db.PendingUpstream("s1", 0, 0, 0)
	if len(up) != 1 || up[0].MessageID != "later" {
		t.Fatalf("upstream = %+v, want only 'later'", up)
	}
	if err := db.PushUpstream(c, &store.Upstream{SenderID: "s1"}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("write with a dead context: %v", err)
	}
}

func TestCloseCommitsQueued(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ccsd.db")
	db, err := Open(path, Options{MaxBatch: 4})
	if err != nil {
		t.Fatal(err)
	}
	release := blockCommitter(t, db)
	const n = 10 // more than MaxBatch: several batches are pending at Close
	errs := make(chan error, n)
	for i := range n {
		go func() { errs <- db.PutDevice(store.Device{ID: fmt.Sprint("d", i)}) }()
	}
	// Wait until all are queued (4 in the channel, the rest blocked
	// handing over), then close while the committer is still busy.
	deadline := time.Now().Add(5 * time.Second)
	for len(db.reqs) < cap(db.reqs) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	closed := make(chan error, 1)
	go func() { closed <- db.Close() }()
	// Close must be waiting for the queued writes.
	select {
	case err := <-closed:
		t.Fatalf("Close returned before queued writes committed: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	if err := release(); err != nil {
		t.Fatal(err)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if err := db.PutDevice(store.Device{ID: "late"}); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("write after Close: %v", err)
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatalf("queued write: %v", err)
		}
	}
	db, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for i := range n {
		if _, err := db.Device(fmt.Sprint("d", i)); err != nil {
			t.Fatalf("after reopen: %v", err)
		}
	}
}

func TestSchemaVersion(t *testing.T) {
	db, path := openTest(t, Options{})
	err := db.update(ctx, func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keyVersion, []byte{0, 0, 0, SchemaVersion + 1})
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, err = Open(path, Options{})
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("schema version %d", SchemaVersion+1)) {
		t.Fatalf("Open of a newer schema: %v", err)
	}
	// The refused Open released the file.
	if err := func() error {
		d, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: 100 * time.Millisecond})
		if err == nil {
			d.Close()
		}
		return err
	}(); err != nil {
		t.Fatalf("file still locked after refused Open: %v", err)
	}
}

func TestCodecRoundTripAndCorrupt(t *testing.T) {
	m := store.Message{Seq: 7, DeviceID: "d", RegID: "r\x00x", SenderID: "s", MessageID: "m", CollapseKey: "c", Expires: -1, Receipt: true, Payload: []byte{0, 1, 2}}
	b := encodeMessage(&m)
	got, err := decodeMessage("d", 7, b)
	if err != nil || got.RegID != m.RegID || got.Expires != -1 || !got.Receipt || string(got.Payload) != string(m.Payload) {
		t.Fatalf("round trip = %+v, %v", got, err)
	}
	for i := range b {
		if _, err := decodeMessage("d", 7, b[:i]); err == nil {
			t.Fatalf("truncated at %d decoded without error", i)
		}
	}
	if _, err := decodeSender([]byte{9}); !errors.Is(err, errCorrupt) {
		t.Fatalf("bad version: %v", err)
	}
	if compositeKey("ab", "c") == nil || string(compositeKey("ab", "c")) == string(compositeKey("a", "bc")) {
		t.Fatal("composite keys collide")
	}
}

// TestBarrierCostsNoCommit: an empty Enqueue is answered after the write
// submitted before it, and a batch of barriers alone commits nothing (no
// transaction, no fsync), so a device login's barrier is free on an idle
// store.
func TestBarrierCostsNoCommit(t *testing.T) {
	db, _ := openTest(t, Options{})
	ctx := context.Background()
	if err := db.Enqueue(ctx, &store.Enqueue{}); err != nil {
		t.Fatalf("a barrier alone: %v", err)
	}
	if c := db.Stats().Commits; c != 0 {
		t.Fatalf("a barrier alone committed %d transactions, want 0", c)
	}
	var mu sync.Mutex
	var order []string
	done := make(chan struct{})
	note := func(s string) func(error) {
		return func(err error) {
			if err != nil {
				t.Errorf("%s: %v", s, err)
			}
			mu.Lock()
			order = append(order, s)
			if len(order) == 2 {
				close(done)
			}
			mu.Unlock()
		}
	}
	m := store.Message{DeviceID: "d", RegID: "r", SenderID: "s", MessageID: "m", Payload: []byte("{}")}
	db.EnqueueAsync(ctx, &store.Enqueue{SenderID: "s", MessageID: "m", Messages: []store.Message{m}}).Then(note("write"))
	db.EnqueueAsync(ctx, &store.Enqueue{}).Then(note("barrier"))
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the callbacks did not run within 10 s")
	}
	if order[0] != "write" || order[1] != "barrier" {
		t.Fatalf("callbacks ran %v, want the write before the barrier", order)
	}
	if ms, err := db.Pending("d", 0, 10, 0); err != nil || len(ms) != 1 {
		t.Fatalf("after the barrier: %d queued, %v; want the earlier write durable", len(ms), err)
	}
}
