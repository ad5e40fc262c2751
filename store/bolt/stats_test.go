package bolt

import (
	"testing"
	"time"

	"github.com/ccsd/ccsd/store"
)

// TestStats: every successful commit is counted once in Commits, in the
// batch-size and the latency histograms, and in the bytes written; the
// upstream total follows pushes and acks of every sender.
func TestStats(t *testing.T) {
	db, _ := openTest(t, Options{})
	before := db.Stats()
	const n = 5
	for i := range n {
		if err := db.Enqueue(ctx, benchMessage(int64(i))); err != nil {
			t.Fatal(err)
		}
	}
	exp := time.Now().UnixMilli() + 60000
	for _, s := range []string{"s1", "s1", "s2"} {
		if err := db.PushUpstream(ctx, &store.Upstream{SenderID: s, MessageID: "u", Expires: exp, Payload: []byte("1234567890")}); err != nil {
			t.Fatal(err)
		}
	}
	st := db.Stats()
	commits := st.Commits - before.Commits
	if commits != n+3 || st.Ops-before.Ops != n+3 {
		t.Fatalf("serial writes: %d commits, %d ops; want %d each", commits, st.Ops-before.Ops, n+3)
	}
	if got := st.Batch.Count - before.Batch.Count; got != commits {
		t.Fatalf("batch histogram counted %d commits, want %d", got, commits)
	}
	if got := st.Batch.Sum - before.Batch.Sum; got != commits {
		t.Fatalf("batch histogram sums %d ops over serial commits, want %d", got, commits)
	}
	if st.Batch.Counts[0]-before.Batch.Counts[0] != commits {
		t.Fatalf("serial commits not all in the 1-op bucket: %v", st.Batch.Counts)
	}
	if got := st.CommitNanos.Count - before.CommitNanos.Count; got != commits || st.CommitNanos.Sum == 0 {
		t.Fatalf("latency histogram: %d observations (want %d), sum %d", got, commits, st.CommitNanos.Sum)
	}
	if min := commits * uint64(db.bolt.Info().PageSize); st.WrittenBytes-before.WrittenBytes < min || st.PageWrites <= before.PageWrites {
		t.Fatalf("written %d bytes in %d commits (at least a meta page each, %d), %d page writes",
			st.WrittenBytes-before.WrittenBytes, commits, min, st.PageWrites)
	}
	if st.Failures != 0 {
		t.Fatalf("%d failed commits", st.Failures)
	}
	if st.Upstream != (store.QueueUsage{Messages: 3, Bytes: st.Upstream.Bytes}) || st.Upstream.Bytes < 30 {
		t.Fatalf("upstream total %+v, want 3 messages of at least 10 bytes each", st.Upstream)
	}
	ups, err := db.PendingUpstream("s1", 0, 10, time.Now().UnixMilli())
	if err != nil || len(ups) != 2 {
		t.Fatalf("pending upstream: %v %v", ups, err)
	}
	if err := db.AckUpstream(ctx, "s1", ups[0].Seq); err != nil {
		t.Fatal(err)
	}
	after := db.Stats().Upstream
	if after.Messages != 2 || after.Bytes >= st.Upstream.Bytes {
		t.Fatalf("upstream total after an ack: %+v (before %+v)", after, st.Upstream)
	}
	if sum := db.UpstreamUsage("s1").Bytes + db.UpstreamUsage("s2").Bytes; after.Bytes != sum {
		t.Fatalf("upstream total %d bytes, senders together %d", after.Bytes, sum)
	}
}

// TestStatsUpstreamAtOpen: the upstream total is rebuilt from the file at
// Open, like the per-sender usage.
func TestStatsUpstreamAtOpen(t *testing.T) {
	db, path := openTest(t, Options{})
	exp := time.Now().UnixMilli() + 60000
	for _, s := range []string{"a", "b", "b"} {
		if err := db.PushUpstream(ctx, &store.Upstream{SenderID: s, MessageID: "u", Expires: exp, Payload: []byte("xy")}); err != nil {
			t.Fatal(err)
		}
	}
	want := db.Stats().Upstream
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db2, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	if got := db2.Stats().Upstream; got != want || got.Messages != 3 {
		t.Fatalf("after reopen: %+v, want %+v", got, want)
	}
}
