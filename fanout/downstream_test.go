package fanout

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/ccsd/ccsd/ccs"
	"github.com/ccsd/ccsd/store"
	"github.com/ccsd/ccsd/store/bolt"
)

// sendJSON decodes and validates payload with package ccs, as the HTTP
// layer does, and routes the typed message: a refusal by ccs is returned
// as Send would return a routing one.
func sendJSON(r *Router, sender, payload string) SendResult {
	st, serr := ccs.Decode([]byte(payload))
	if serr != nil {
		return SendResult{Nack: &ccs.Nack{Code: ccs.CodeInvalidJSON, Sub: "JSON_PARSING_ERROR", Description: serr.Text}}
	}
	m, n := st.Downstream()
	if n != nil {
		return SendResult{Nack: n}
	}
	return r.Send(context.Background(), sender, m)
}

// newTestRouter opens a real store in a temp dir with one sender and a group
// of n members on n devices.
func newTestRouter(tb testing.TB, n int) (*Router, *bolt.DB, string) {
	tb.Helper()
	db, key := newTestStore(tb, n)
	r, err := New(Config{Store: db})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { r.Close() })
	return r, db, key
}

// newTestStore opens a real store in a temp dir with sender 123, devices
// dev0.. with registrations reg0.. of com.example, and a group of them all
// whose notification_key it returns.
func newTestStore(tb testing.TB, n int) (*bolt.DB, string) {
	tb.Helper()
	db, err := bolt.Open(filepath.Join(tb.TempDir(), "ccsd.db"), bolt.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	if err := db.PutSender(store.Sender{ID: "123", KeyHash: []byte("h"), Created: time.Now()}); err != nil {
		tb.Fatal(err)
	}
	var members []string
	for i := 0; i < n; i++ {
		dev := "dev" + strconv.Itoa(i)
		if err := db.PutDevice(store.Device{ID: dev, SecretHash: []byte("s"), Created: time.Now()}); err != nil {
			tb.Fatal(err)
		}
		reg, err := db.Register(store.Registration{ID: "reg" + strconv.Itoa(i), DeviceID: dev, SenderID: "123", App: "com.example", Created: time.Now()})
		if err != nil {
			tb.Fatal(err)
		}
		members = append(members, reg.ID)
	}
	const key = "APA91bTESTKEY"
	if err := db.CreateGroup(context.Background(), store.Group{Key: key, Name: "user", SenderID: "123", App: "com.example", Members: members, Created: time.Now()}); err != nil {
		tb.Fatal(err)
	}
	return db, key
}

// TestGroupFanOutIsOneCommit: all ten member copies of a group message are
// written in one transaction (one fsync), not one per member.
func TestGroupFanOutIsOneCommit(t *testing.T) {
	r, db, key := newTestRouter(t, 10)
	before := db.Stats().Commits
	res := sendJSON(r, "123", `{"to":"`+key+`","message_id":"m-1","data":{"k":"v"}}`)
	if res.Nack != nil || !res.Group || res.Success != 10 || res.Failure != 0 {
		t.Fatalf("send: %+v", res)
	}
	if commits := db.Stats().Commits - before; commits != 1 {
		t.Fatalf("fan-out to 10 members took %d commits, want 1", commits)
	}
	for i := 0; i < 10; i++ {
		if n, _ := db.QueueLen("dev" + strconv.Itoa(i)); n != 1 {
			t.Fatalf("dev%d queue has %d messages, want 1", i, n)
		}
	}
	// Another sender cannot use the key: same answer as an unknown one.
	if res := sendJSON(r, "999", `{"to":"`+key+`","message_id":"m-2"}`); res.Nack == nil || res.Nack.Code != ccs.CodeBadRegistration {
		t.Fatalf("other sender's key: %+v", res)
	}
}

// BenchmarkSendToGroup10 measures send-to-key with 10 members through the
// router and the real store, with concurrent senders sharing commits. Each
// op is one group message (10 device copies).
func BenchmarkSendToGroup10(b *testing.B) {
	// A benchmark sends far more to each registration than a phone gets:
	// lift the per-registration bounds, as ccsbench runs do.
	db, key := newTestStore(b, 10)
	r, err := New(Config{Store: db, DownstreamRate: -1, MaxQueuedPerRegistration: -1, MaxCollapseKeys: -1})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { r.Close() })
	b.ReportAllocs()
	b.SetParallelism(16)
	var n int64
	start := db.Stats()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			id := fmt.Sprintf("m-%p-%d", &i, i)
			res := sendJSON(r, "123", `{"to":"`+key+`","message_id":"`+id+`","collapse_key":"`+id+`","data":{"k":"v"}}`)
			if res.Nack != nil || res.Success != 10 {
				b.Errorf("send: %+v", res.Nack)
				return
			}
		}
	})
	b.StopTimer()
	n = int64(b.N)
	end := db.Stats()
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "groupmsgs/s")
	b.ReportMetric(float64(end.Ops-start.Ops)/float64(max(1, end.Commits-start.Commits)), "ops/commit")
}

// TestSweepCatchesUp: one sweep pass deletes every expired record even when
// there are more than a single bounded store call handles.
func TestSweepCatchesUp(t *testing.T) {
	r, db, _ := newTestRouter(t, 1)
	now := time.Now()
	r.cfg.Now = func() time.Time { return now }
	const n = 25000 // more than two bounded Sweep calls
	for i := 0; i < n; i += 500 {
		e := &store.Enqueue{SenderID: "123", MessageID: "batch-" + strconv.Itoa(i), DedupUntil: now.UnixMilli() + 1}
		for j := 0; j < 500; j++ {
			e.Messages = append(e.Messages, store.Message{DeviceID: "dev0", RegID: "reg0", SenderID: "123", MessageID: "m", Expires: now.UnixMilli() + 1, Payload: []byte("{}")})
		}
		if err := db.Enqueue(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
	now = now.Add(time.Second)
	// One bounded store call does not suffice: the pass must keep going.
	first, err := db.Sweep(context.Background(), now.UnixMilli())
	if err != nil || !first.More {
		t.Fatalf("setup: one Sweep call handled everything (%+v, %v); raise n", first, err)
	}
	r.sweep()
	if n, _ := db.QueueLen("dev0"); n != 0 {
		t.Fatalf("%d expired messages left after one sweep pass", n)
	}
	if st, _ := db.Sweep(context.Background(), now.UnixMilli()); st.Messages+st.Dedup != 0 || st.More {
		t.Fatalf("a second sweep still found %+v", st)
	}
}

// TestStoreFailureIsRetryable: when the store cannot take the message (here:
// closed), the sender gets a retryable nack, never an ack.
func TestStoreFailureIsRetryable(t *testing.T) {
	r, db, key := newTestRouter(t, 2)
	db.Close()
	for _, to := range []string{"reg0", key} {
		res := sendJSON(r, "123", `{"to":"`+to+`","message_id":"m-closed"}`)
		if res.Nack == nil || (res.Nack.Code != ccs.CodeServiceUnavailable && res.Nack.Code != ccs.CodeInternalServerError) {
			t.Fatalf("to %s with the store closed: %+v", to, res)
		}
		if code, _ := res.Nack.HTTPError(); code != "Unavailable" && code != "InternalServerError" {
			t.Fatalf("HTTP error name %q", code)
		}
	}
}
