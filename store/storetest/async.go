package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/ccsd/ccsd/store"
)

// asyncTests pin Write.Then and the asynchronous acks: a callback is
// called once, with Wait's outcome, in the order the writes took effect,
// and at once when the write is already done.
var asyncTests = []test{
	{"ThenInCommitOrder", func(t *testing.T, x *env) {
		db, ctx := x.db, x.ctx
		const n = 50
		var mu sync.Mutex
		var order []int
		var errs []error
		var wg sync.WaitGroup
		es := make([]*store.Enqueue, n)
		for i := range n {
			es[i] = &store.Enqueue{SenderID: "s1", MessageID: fmt.Sprint(i), DedupUntil: x.clk.ms() + 60000,
				Messages: []store.Message{msg("d1", "r1", fmt.Sprint(i))}}
			wg.Add(1)
			db.EnqueueAsync(ctx, es[i]).Then(func(err error) {
				mu.Lock()
				// The write's results are set when its callback runs.
				if err == nil && es[i].Messages[0].Seq == 0 {
					err = errors.New("no seq yet")
				}
				order, errs = append(order, i), append(errs, err)
				mu.Unlock()
				wg.Done()
			})
		}
		wg.Wait()
		for k, i := range order {
			if i != k || errs[k] != nil {
				t.Fatalf("callback %d was write %d with %v; want write %d with nil (order %v)", k, i, errs[k], k, order)
			}
		}
		// A duplicate's callback gets the refusal.
		got := make(chan error, 1)
		db.EnqueueAsync(ctx, &store.Enqueue{SenderID: "s1", MessageID: "0", DedupUntil: x.clk.ms() + 60000,
			Messages: []store.Message{msg("d1", "r1", "0")}}).Then(func(err error) { got <- err })
		if err := <-got; !errors.Is(err, store.ErrDuplicate) {
			t.Fatalf("duplicate's callback: %v, want ErrDuplicate", err)
		}
	}},
	{"ThenOnADoneWriteCallsAtOnce", func(t *testing.T, x *env) {
		db, ctx := x.db, x.ctx
		w1 := db.PushUpstreamAsync(ctx, &store.Upstream{SenderID: "s1", MessageID: "a", Payload: []byte("{}")})
		w2 := db.PushUpstreamAsync(ctx, &store.Upstream{SenderID: "s1", MessageID: "b", Payload: []byte("{}")})
		if err := w2.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		// w1 took effect before w2 (ordered submission): its outcome is
		// known, so Then calls back before it returns.
		called := false
		w1.Then(func(err error) {
			if err != nil {
				t.Errorf("w1: %v", err)
			}
			called = true
		})
		if !called {
			t.Fatal("Then on a finished write did not call back at once")
		}
	}},
	{"AckAsync", func(t *testing.T, x *env) {
		db, ctx := x.db, x.ctx
		e := &store.Enqueue{Messages: []store.Message{msg("d1", "r1", "m1"), msg("d1", "r1", "m2")}}
		if err := db.Enqueue(ctx, e); err != nil {
			t.Fatal(err)
		}
		r := &store.Upstream{SenderID: "s1", MessageID: "dr2:m1", Payload: []byte("{}")}
		if err := db.AckAsync(ctx, "d1", e.Messages[0].Seq, r).Wait(ctx); err != nil {
			t.Fatal(err)
		}
		if r.Seq == 0 {
			t.Fatal("the receipt got no seq")
		}
		got := make(chan error, 1)
		db.AckAsync(ctx, "d1", e.Messages[0].Seq, &store.Upstream{SenderID: "s1", MessageID: "dr2:again"}).Then(func(err error) { got <- err })
		if err := <-got; !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("second ack: %v, want ErrNotFound", err)
		}
		p, _ := db.Pending("d1", 0, 0, 0)
		if len(p) != 1 || p[0].MessageID != "m2" {
			t.Fatalf("queued after the ack: %v, want [m2]", ids(p))
		}
		ups, _ := db.PendingUpstream("s1", 0, 0, 0)
		if len(ups) != 1 || ups[0].MessageID != "dr2:m1" {
			t.Fatalf("upstream after the acks: %d records, want the first receipt only", len(ups))
		}
		if err := db.AckAsync(ctx, "d1", e.Messages[1].Seq, &store.Upstream{MessageID: "x"}).Wait(ctx); err == nil {
			t.Fatal("a receipt without a sender id was accepted")
		}
		if p, _ := db.Pending("d1", 0, 0, 0); len(p) != 1 {
			t.Fatal("a refused ack deleted its message")
		}
	}},
	{"AckUpstreamAsync", func(t *testing.T, x *env) {
		db, ctx := x.db, x.ctx
		u := &store.Upstream{SenderID: "s1", MessageID: "u1", Payload: []byte("{}")}
		if err := db.PushUpstream(ctx, u); err != nil {
			t.Fatal(err)
		}
		got := make(chan error, 2)
		db.AckUpstreamAsync(ctx, "s1", u.Seq).Then(func(err error) { got <- err })
		db.AckUpstreamAsync(ctx, "s1", u.Seq).Then(func(err error) { got <- err })
		if err := <-got; err != nil {
			t.Fatal(err)
		}
		if err := <-got; !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("second ack: %v, want ErrNotFound", err)
		}
		if ups, _ := db.PendingUpstream("s1", 0, 0, 0); len(ups) != 0 || db.UpstreamUsage("s1").Messages != 0 {
			t.Fatalf("after the ack: %d records, usage %+v", len(ups), db.UpstreamUsage("s1"))
		}
	}},
	{"ThenAfterClose", func(t *testing.T, x *env) {
		db, ctx := x.db, x.ctx
		w := db.EnqueueAsync(ctx, &store.Enqueue{Messages: []store.Message{msg("d1", "r1", "m1")}})
		got := make(chan error, 1)
		w.Then(func(err error) { got <- err })
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		// Submitted before Close: it completes, and its callback has run.
		select {
		case err := <-got:
			if err != nil {
				t.Fatalf("write submitted before Close: %v", err)
			}
		default:
			t.Fatal("Close returned before the callback of a write submitted before it ran")
		}
		db.AckAsync(ctx, "d1", 1, nil).Then(func(err error) { got <- err })
		if err := <-got; !errors.Is(err, store.ErrClosed) {
			t.Fatalf("after Close: %v, want ErrClosed", err)
		}
	}},
}
