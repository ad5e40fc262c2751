package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/ccsd/ccsd/store"
)

// contractTests pin the cross-cutting rules of the package documentation:
// ordered submission, Seq growth under concurrency, atomic writes,
// snapshot reads after acks, cancellation and Close.
var contractTests = []test{
	// OrderedSubmission: async writes submitted one after another by one
	// goroutine take effect in that order, before any of them is waited
	// for.
	{"OrderedSubmission", func(t *testing.T, x *env) {
		db, ctx := x.db, x.ctx
		const n = 50
		var ws []store.Write
		var es []*store.Enqueue
		var us []*store.Upstream
		for i := range n {
			e := &store.Enqueue{Messages: []store.Message{msg("d1", "r1", fmt.Sprint(i))}}
			u := &store.Upstream{SenderID: "s1", MessageID: fmt.Sprint(i), Payload: []byte("{}")}
			es, us = append(es, e), append(us, u)
			ws = append(ws, db.EnqueueAsync(ctx, e), db.PushUpstreamAsync(ctx, u))
		}
		for i, w := range ws {
			if err := w.Wait(ctx); err != nil {
				t.Fatalf("write %d: %v", i, err)
			}
		}
		p, err := db.Pending("d1", 0, 0, 0)
		if err != nil || len(p) != n {
			t.Fatalf("Pending = %d messages, %v", len(p), err)
		}
		up, err := db.PendingUpstream("s1", 0, 0, 0)
		if err != nil || len(up) != n {
			t.Fatalf("PendingUpstream = %d records, %v", len(up), err)
		}
		for i := range n {
			if p[i].MessageID != fmt.Sprint(i) || p[i].Seq != es[i].Messages[0].Seq {
				t.Fatalf("message %d = %s seq %d, want %d seq %d", i, p[i].MessageID, p[i].Seq, i, es[i].Messages[0].Seq)
			}
			if up[i].MessageID != fmt.Sprint(i) || up[i].Seq != us[i].Seq {
				t.Fatalf("upstream %d = %s seq %d, want %d seq %d", i, up[i].MessageID, up[i].Seq, i, us[i].Seq)
			}
			if i > 0 && (p[i].Seq <= p[i-1].Seq || up[i].Seq <= up[i-1].Seq) {
				t.Fatalf("Seq did not grow at %d", i)
			}
		}
	}},
	// ConcurrentSeqs: concurrent writers to one queue get distinct Seqs,
	// and a cursor read walks them all in Seq order.
	{"ConcurrentSeqs", func(t *testing.T, x *env) {
		db, ctx := x.db, x.ctx
		const writers, each = 8, 20
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				for i := range each {
					if err := db.Enqueue(ctx, &store.Enqueue{Messages: []store.Message{msg("d1", "r1", fmt.Sprint(w, "-", i))}}); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		var after uint64
		seen := 0
		for {
			p, err := db.Pending("d1", after, 7, 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(p) == 0 {
				break
			}
			for _, m := range p {
				if m.Seq <= after {
					t.Fatalf("Seq %d after cursor %d", m.Seq, after)
				}
				after = m.Seq
				seen++
			}
		}
		if seen != writers*each {
			t.Fatalf("cursor walk saw %d messages, want %d", seen, writers*each)
		}
	}},
	// AckedBeforeReadIsHidden: a read never lists a record whose ack
	// returned before the read was called, and the cursor stays valid
	// across acks (fanout's senderHub relies on both).
	{"AckedBeforeReadIsHidden", func(t *testing.T, x *env) {
		db, ctx := x.db, x.ctx
		for i := range 10 {
			if err := db.PushUpstream(ctx, &store.Upstream{SenderID: "s1", MessageID: fmt.Sprint(i)}); err != nil {
				t.Fatal(err)
			}
			if err := db.Enqueue(ctx, &store.Enqueue{Messages: []store.Message{msg("d1", "r1", fmt.Sprint(i))}}); err != nil {
				t.Fatal(err)
			}
		}
		for seq := uint64(1); seq <= 10; seq += 2 {
			if err := db.AckUpstream(ctx, "s1", seq); err != nil {
				t.Fatal(err)
			}
			if _, err := db.Ack(ctx, "d1", seq, nil); err != nil {
				t.Fatal(err)
			}
			up, err := db.PendingUpstream("s1", 0, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, u := range up {
				if u.Seq%2 == 1 && u.Seq <= seq {
					t.Fatalf("upstream %d listed after its ack returned", u.Seq)
				}
			}
			p, _ := db.Pending("d1", 0, 0, 0)
			for _, m := range p {
				if m.Seq%2 == 1 && m.Seq <= seq {
					t.Fatalf("message %d listed after its ack returned", m.Seq)
				}
			}
		}
		up, _ := db.PendingUpstream("s1", 4, 2, 0)
		if len(up) != 2 || up[0].Seq != 6 || up[1].Seq != 8 {
			t.Fatalf("PendingUpstream(after 4, limit 2) = %+v, want seqs 6 8", up)
		}
	}},
	// AckReceiptAtomic: an ack with a receipt pushes it exactly when the
	// message was still queued; concurrent acks of one message give one
	// message and one receipt.
	{"AckReceiptAtomic", func(t *testing.T, x *env) {
		db, ctx := x.db, x.ctx
		e := &store.Enqueue{Messages: []store.Message{msg("d1", "r1", "m1")}}
		if err := db.Enqueue(ctx, e); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		won := 0
		for range 8 {
			wg.Go(func() {
				rc := &store.Upstream{SenderID: "s1", MessageID: "dr2:m1"}
				_, err := db.Ack(ctx, "d1", e.Messages[0].Seq, rc)
				if err == nil {
					mu.Lock()
					won++
					mu.Unlock()
				} else if !errors.Is(err, store.ErrNotFound) {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		up, _ := db.PendingUpstream("s1", 0, 0, 0)
		if won != 1 || len(up) != 1 {
			t.Fatalf("%d acks won, %d receipts; want 1 and 1", won, len(up))
		}
	}},
	// GroupFanoutAtomic: one Enqueue of many devices' copies is one write:
	// refused as a duplicate it writes no copy at all.
	{"GroupFanoutAtomic", func(t *testing.T, x *env) {
		db, ctx := x.db, x.ctx
		fan := func() *store.Enqueue {
			e := &store.Enqueue{SenderID: "s1", MessageID: "g1", DedupUntil: x.clk.ms() + 60000}
			for i := range 5 {
				e.Messages = append(e.Messages, msg(fmt.Sprint("d", i), fmt.Sprint("r", i), "g1"))
			}
			return e
		}
		if err := db.Enqueue(ctx, fan()); err != nil {
			t.Fatal(err)
		}
		if err := db.Enqueue(ctx, fan()); !errors.Is(err, store.ErrDuplicate) {
			t.Fatalf("second fan-out: %v, want ErrDuplicate", err)
		}
		for i := range 5 {
			if n, _ := db.QueueLen(fmt.Sprint("d", i)); n != 1 {
				t.Fatalf("device %d holds %d copies, want 1", i, n)
			}
		}
		// A message without a device fails the whole write.
		bad := fan()
		bad.MessageID = "g2"
		bad.Messages[3].DeviceID = ""
		if err := db.Enqueue(ctx, bad); err == nil {
			t.Fatal("an enqueue with a message without a device succeeded")
		}
		for i := range 5 {
			if n, _ := db.QueueLen(fmt.Sprint("d", i)); n != 1 {
				t.Fatalf("failed fan-out left %d messages on device %d", n, i)
			}
		}
		if err := db.Enqueue(ctx, &store.Enqueue{SenderID: "s1", MessageID: "g2", DedupUntil: x.clk.ms() + 60000}); err != nil {
			t.Fatalf("failed fan-out left its dedup record: %v", err)
		}
	}},
	// CancelledWriteWritesNothing: a write whose context is already done
	// returns its error and leaves nothing behind.
	{"CancelledWriteWritesNothing", func(t *testing.T, x *env) {
		db := x.db
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := db.Enqueue(ctx, &store.Enqueue{Messages: []store.Message{msg("d1", "r1", "m1")}}); !errors.Is(err, context.Canceled) {
			t.Fatalf("Enqueue: %v, want context.Canceled", err)
		}
		if err := db.PushUpstream(ctx, &store.Upstream{SenderID: "s1"}); !errors.Is(err, context.Canceled) {
			t.Fatalf("PushUpstream: %v, want context.Canceled", err)
		}
		if n, _ := db.QueueLen("d1"); n != 0 {
			t.Fatalf("cancelled enqueue wrote %d messages", n)
		}
		if u := db.UpstreamUsage("s1"); u.Messages != 0 {
			t.Fatalf("cancelled push counted: %+v", u)
		}
	}},
	// Closed: after Close every method answers ErrClosed, and Close is
	// idempotent.
	{"Closed", func(t *testing.T, x *env) {
		db, ctx := x.db, x.ctx
		if err := db.LastCommitErr(); err != nil {
			t.Fatalf("LastCommitErr of a fresh backend: %v", err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		if err := db.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		checks := map[string]error{
			"PutDevice":     db.PutDevice(store.Device{ID: "d"}),
			"Enqueue":       db.Enqueue(ctx, &store.Enqueue{Messages: []store.Message{msg("d1", "r1", "m")}}),
			"PushUpstream":  db.PushUpstream(ctx, &store.Upstream{SenderID: "s1"}),
			"LastCommitErr": db.LastCommitErr(),
		}
		_, checks["Sender"] = db.Sender("s")
		_, checks["Pending"] = db.Pending("d1", 0, 0, 0)
		_, checks["Ack"] = db.Ack(ctx, "d1", 1, nil)
		for name, err := range checks {
			if !errors.Is(err, store.ErrClosed) {
				t.Errorf("%s after Close: %v, want ErrClosed", name, err)
			}
		}
	}},
}
