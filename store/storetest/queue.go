package storetest

import (
	"errors"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/ccsd/ccsd/store"
)

var queueTests = []test{
	{"EnqueueWithUpstream", func(t *testing.T, x *env) {
		db, ctx := x.db, x.ctx
		now := x.clk.ms()
		if err := db.PushUpstream(ctx, &store.Upstream{SenderID: "s1", MessageID: "before", Payload: []byte("{}")}); err != nil {
			t.Fatal(err)
		}
		up := &store.Upstream{SenderID: "s1", MessageID: "g1", Expires: now + 60000, Payload: []byte(`{"to":"KEY"}`)}
		e := &store.Enqueue{SenderID: "s1", MessageID: "g1", DedupUntil: now + 60000,
			Messages: []store.Message{msg("d1", "r1", "g1"), msg("d2", "r2", "g1")}, Upstream: up}
		if err := db.Enqueue(ctx, e); err != nil {
			t.Fatal(err)
		}
		if up.Seq != 2 || e.Messages[0].Seq == 0 || e.Messages[1].Seq == 0 {
			t.Fatalf("seqs: upstream %d, messages %d %d", up.Seq, e.Messages[0].Seq, e.Messages[1].Seq)
		}
		got, err := db.PendingUpstream("s1", 1, 0, now)
		if err != nil || len(got) != 1 || got[0].MessageID != "g1" || got[0].Seq != 2 || string(got[0].Payload) != `{"to":"KEY"}` || got[0].Expires != up.Expires {
			t.Fatalf("PendingUpstream = %+v, %v", got, err)
		}
		if u := db.UpstreamUsage("s1"); u.Messages != 2 {
			t.Fatalf("UpstreamUsage = %+v, want both records counted", u)
		}
		// A duplicate writes neither the copies nor the upstream record.
		dup := &store.Enqueue{SenderID: "s1", MessageID: "g1", DedupUntil: now + 60000,
			Messages: []store.Message{msg("d1", "r1", "g1")}, Upstream: &store.Upstream{SenderID: "s1", MessageID: "g1"}}
		if err := db.Enqueue(ctx, dup); !errors.Is(err, store.ErrDuplicate) {
			t.Fatalf("duplicate: %v", err)
		}
		if got, _ := db.PendingUpstream("s1", 0, 0, now); len(got) != 2 {
			t.Fatalf("after the duplicate: %d upstream records, want 2", len(got))
		}
		if n, _ := db.QueueLen("d1"); n != 1 {
			t.Fatalf("after the duplicate: %d queued for d1", n)
		}
		// One that cannot be written (no sender id) writes nothing.
		bad := &store.Enqueue{Messages: []store.Message{msg("d3", "r3", "x")}, Upstream: &store.Upstream{MessageID: "x"}}
		if err := db.Enqueue(ctx, bad); err == nil {
			t.Fatal("an upstream copy without a sender id was accepted")
		}
		if n, _ := db.QueueLen("d3"); n != 0 {
			t.Fatalf("refused enqueue wrote %d messages", n)
		}
	}},
	{"EnqueuePendingAck", func(t *testing.T, x *env) {
		db, ctx := x.db, x.ctx
		now := x.clk.ms()
		e := &store.Enqueue{SenderID: "s1", MessageID: "m1", DedupUntil: now + 60000, Messages: []store.Message{
			msg("d1", "r1", "m1"), msg("d2", "r2", "m1"), msg("d1", "r3", "m1"),
		}}
		e.Messages[0].Receipt = true
		e.Messages[0].Expires = now + 1000
		e.Messages[0].CollapseKey = "ck"
		if err := db.Enqueue(ctx, e); err != nil {
			t.Fatal(err)
		}
		if e.Messages[0].Seq != 1 || e.Messages[1].Seq != 1 || e.Messages[2].Seq != 2 {
			t.Fatalf("seqs = %d %d %d", e.Messages[0].Seq, e.Messages[1].Seq, e.Messages[2].Seq)
		}
		p, err := db.Pending("d1", 0, 10, now)
		if err != nil || len(p) != 2 {
			t.Fatalf("Pending = %+v, %v", p, err)
		}
		want := e.Messages[0]
		if g := p[0]; g.Seq != 1 || g.DeviceID != "d1" || g.RegID != "r1" || g.SenderID != "s1" || g.MessageID != "m1" ||
			g.CollapseKey != "ck" || g.Expires != want.Expires || !g.Receipt || string(g.Payload) != string(want.Payload) {
			t.Fatalf("Pending[0] = %+v, want %+v", g, want)
		}
		if p, _ := db.Pending("d1", 1, 10, now); len(p) != 1 || p[0].Seq != 2 {
			t.Fatalf("Pending after 1 = %+v", p)
		}
		if p, _ := db.Pending("d1", 0, 1, now); len(p) != 1 || p[0].Seq != 1 {
			t.Fatalf("Pending limit 1 = %+v", p)
		}
		if p, err := db.Pending("nodev", 0, 10, now); err != nil || len(p) != 0 {
			t.Fatalf("Pending(nodev) = %+v, %v", p, err)
		}
		if n, err := db.QueueLen("d1"); err != nil || n != 2 {
			t.Fatalf("QueueLen = %d, %v", n, err)
		}

		m, err := db.Ack(ctx, "d1", 2, nil)
		if err != nil || m.RegID != "r3" {
			t.Fatalf("Ack = %+v, %v", m, err)
		}
		if _, err := db.Ack(ctx, "d1", 2, nil); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("second Ack: %v", err)
		}
		if _, err := db.Ack(ctx, "nodev", 1, nil); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Ack(nodev): %v", err)
		}
		if n, _ := db.QueueLen("d1"); n != 1 {
			t.Fatalf("QueueLen after ack = %d", n)
		}
		// Sequence numbers keep growing after the queue empties.
		db.Ack(ctx, "d1", 1, nil)
		e2 := &store.Enqueue{Messages: []store.Message{msg("d1", "r1", "m2")}}
		if err := db.Enqueue(ctx, e2); err != nil || e2.Messages[0].Seq != 3 {
			t.Fatalf("store.Enqueue after empty: seq %d, %v", e2.Messages[0].Seq, err)
		}
	}},
	{"AckReceipt", func(t *testing.T, x *env) {
		db, ctx := x.db, x.ctx
		e := &store.Enqueue{Messages: []store.Message{msg("d1", "r1", "m1")}}
		if err := db.Enqueue(ctx, e); err != nil {
			t.Fatal(err)
		}
		rc := &store.Upstream{SenderID: "s1", MessageID: "dr2:m1", Payload: []byte(`{"receipt":1}`)}
		m, err := db.Ack(ctx, "d1", e.Messages[0].Seq, rc)
		if err != nil || m.MessageID != "m1" || rc.Seq != 1 {
			t.Fatalf("Ack = %+v, %v, receipt seq %d", m, err, rc.Seq)
		}
		rc2 := &store.Upstream{SenderID: "s1", MessageID: "dr2:m1-again"}
		if _, err := db.Ack(ctx, "d1", e.Messages[0].Seq, rc2); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("second Ack: %v", err)
		}
		up, err := db.PendingUpstream("s1", 0, 0, 0)
		if err != nil || len(up) != 1 || up[0].MessageID != "dr2:m1" || string(up[0].Payload) != `{"receipt":1}` || up[0].SenderID != "s1" {
			t.Fatalf("PendingUpstream = %+v, %v", up, err)
		}
	}},
	{"Collapse", func(t *testing.T, x *env) {
		db, ctx := x.db, x.ctx
		put := func(reg, id, ck string) uint64 {
			m := msg("d1", reg, id)
			m.CollapseKey = ck
			m.Expires = x.clk.ms() + 60000
			e := &store.Enqueue{Messages: []store.Message{m}}
			if err := db.Enqueue(ctx, e); err != nil {
				t.Fatal(err)
			}
			return e.Messages[0].Seq
		}
		put("r1", "a", "score")
		put("r1", "b", "other")
		put("r2", "c", "score") // another app instance: not collapsed
		put("r1", "d", "score")
		p, _ := db.Pending("d1", 0, 0, 0)
		if got := ids(p); len(got) != 3 || got[0] != "b" || got[1] != "c" || got[2] != "d" {
			t.Fatalf("after collapse: %v", got)
		}
		// Collapse within one Enqueue.
		m1, m2 := msg("d1", "r1", "e"), msg("d1", "r1", "f")
		m1.CollapseKey, m2.CollapseKey = "score", "score"
		if err := db.Enqueue(ctx, &store.Enqueue{Messages: []store.Message{m1, m2}}); err != nil {
			t.Fatal(err)
		}
		p, _ = db.Pending("d1", 0, 0, 0)
		if got := ids(p); len(got) != 3 || got[2] != "f" {
			t.Fatalf("after in-batch collapse: %v", got)
		}
		// After the survivor is acked, a new one is simply added.
		if _, err := db.Ack(ctx, "d1", p[2].Seq, nil); err != nil {
			t.Fatal(err)
		}
		put("r1", "g", "score")
		p, _ = db.Pending("d1", 0, 0, 0)
		if got := ids(p); len(got) != 3 || got[2] != "g" {
			t.Fatalf("after ack + new: %v", got)
		}
	}},
	{"Dedup", func(t *testing.T, x *env) {
		db, ctx := x.db, x.ctx
		now := x.clk.ms()
		e := func(until int64) *store.Enqueue {
			return &store.Enqueue{SenderID: "s1", MessageID: "m1", DedupUntil: until, Messages: []store.Message{msg("d1", "r1", "m1")}}
		}
		if err := db.Enqueue(ctx, e(now+60000)); err != nil {
			t.Fatal(err)
		}
		if err := db.Enqueue(ctx, e(now+60000)); !errors.Is(err, store.ErrDuplicate) {
			t.Fatalf("dup: %v", err)
		}
		if n, _ := db.QueueLen("d1"); n != 1 {
			t.Fatalf("duplicate wrote: QueueLen %d", n)
		}
		// Another sender may use the same message id.
		other := e(now + 60000)
		other.SenderID = "s2"
		if err := db.Enqueue(ctx, other); err != nil {
			t.Fatal(err)
		}
		// Empty MessageID disables dedup.
		for range 2 {
			if err := db.Enqueue(ctx, &store.Enqueue{SenderID: "s1", DedupUntil: now + 60000, Messages: []store.Message{msg("d1", "r1", "")}}); err != nil {
				t.Fatal(err)
			}
		}
		// A window that has passed allows the id again.
		if err := db.Enqueue(ctx, &store.Enqueue{SenderID: "s1", MessageID: "m2", DedupUntil: now - 1}); err != nil {
			t.Fatal(err)
		}
		if err := db.Enqueue(ctx, e(now+60000)); !errors.Is(err, store.ErrDuplicate) {
			t.Fatalf("still in window: %v", err)
		}
		short := &store.Enqueue{SenderID: "s1", MessageID: "m3", DedupUntil: x.clk.ms() + 30}
		if err := db.Enqueue(ctx, short); err != nil {
			t.Fatal(err)
		}
		x.clk.Advance(50 * time.Millisecond) // the backend's clock, not a sleep
		short.DedupUntil = x.clk.ms() + 60000
		if err := db.Enqueue(ctx, short); err != nil {
			t.Fatalf("after window: %v", err)
		}
		if err := db.Enqueue(ctx, short); !errors.Is(err, store.ErrDuplicate) {
			t.Fatalf("renewed window: %v", err)
		}
	}},
	{"UnregisterDeletesQueued", func(t *testing.T, x *env) {
		db, ctx := x.db, x.ctx
		for _, r := range []store.Registration{{ID: "r1", DeviceID: "d1", SenderID: "s1", App: "a"}, {ID: "r2", DeviceID: "d1", SenderID: "s1", App: "b"}} {
			if _, err := db.Register(r); err != nil {
				t.Fatal(err)
			}
		}
		now := x.clk.ms()
		var ms []store.Message
		for i, reg := range []string{"r1", "r2", "r1", "r2", "r1"} {
			m := msg("d1", reg, string(rune('a'+i)))
			m.Expires = now + 60000
			if i%2 == 0 {
				m.CollapseKey = "k" + string(rune('a'+i))
			}
			ms = append(ms, m)
		}
		if err := db.Enqueue(ctx, &store.Enqueue{Messages: ms}); err != nil {
			t.Fatal(err)
		}
		if err := db.Unregister(ctx, "r1"); err != nil {
			t.Fatal(err)
		}
		p, _ := db.Pending("d1", 0, 0, 0)
		if got := ids(p); len(got) != 2 || got[0] != "b" || got[1] != "d" {
			t.Fatalf("after unregister: %v", got)
		}
		if _, err := db.Registration("r1"); !errors.Is(err, store.ErrUnregistered) {
			t.Fatalf("Registration(r1): %v", err)
		}
	}},
	{"ExpiryAndSweep", func(t *testing.T, x *env) {
		db, ctx := x.db, x.ctx
		now := x.clk.ms() + 1000 // Pending and Sweep take nowMs; the clock stays before it
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
		// Dedup records are written at the backend's clock, which is before
		// now: both windows are open when written.
		putDedup := func(sender, id string, until int64) {
			t.Helper()
			if err := db.Enqueue(ctx, &store.Enqueue{SenderID: sender, MessageID: id, DedupUntil: until}); err != nil {
				t.Fatal(err)
			}
		}
		putDedup("s1", "x", now-3)
		putDedup("s1", "y", now+3)

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
		// The swept dedup record of "y" is gone although its window is
		// still open at the backend's clock.
		if err := db.Enqueue(ctx, &store.Enqueue{SenderID: "s1", MessageID: "y", DedupUntil: now + 3}); err != nil {
			t.Fatalf("dedup record survived its sweep: %v", err)
		}
	}},
	// EnqueueOverflow: past Message.MaxQueued a registration's messages
	// without a collapse key are all deleted and one deleted_messages message
	// stands for them; its collapsible messages and other registrations'
	// messages on the same device stay.
	{"EnqueueOverflow", func(t *testing.T, x *env) {
		db, ctx := x.db, x.ctx
		const max = 3
		enq := func(db store.Backend, reg, id string) *store.Enqueue {
			t.Helper()
			e := overflowing(reg, id, max)
			if err := db.Enqueue(ctx, e); err != nil {
				t.Fatal(err)
			}
			return e
		}
		for i := range max {
			enq(db, "r1", "a"+strconv.Itoa(i))
		}
		ck := overflowing("r1", "c", max)
		ck.Messages[0].CollapseKey = "inbox"
		if err := db.Enqueue(ctx, ck); err != nil {
			t.Fatal(err)
		}
		enq(db, "r2", "other") // another app on the same device
		if e := enq(db, "r1", "a3"); e.Discarded != max+1 || e.Messages[0].Seq != 0 {
			t.Fatalf("overflow: discarded %d, seq %d; want %d, 0", e.Discarded, e.Messages[0].Seq, max+1)
		}
		want := []string{"c", "other", "deleted-a3"}
		if p, _ := db.Pending("d1", 0, 0, 0); !slices.Equal(ids(p), want) {
			t.Fatalf("after overflow: %v, want %v", ids(p), want)
		}
		// Messages after the discard queue normally, counted from zero.
		for i := range max {
			if e := enq(db, "r1", "b"+strconv.Itoa(i)); e.Discarded != 0 {
				t.Fatalf("b%d discarded %d after the reset", i, e.Discarded)
			}
		}
		// A second overflow replaces the first deleted_messages: never two.
		enq(db, "r1", "b3")
		want = []string{"c", "other", "deleted-b3"}
		p, _ := db.Pending("d1", 0, 0, 0)
		if !slices.Equal(ids(p), want) {
			t.Fatalf("after a second overflow: %v, want %v", ids(p), want)
		}
		if _, err := db.Ack(ctx, "d1", p[2].Seq, nil); err != nil {
			t.Fatal(err)
		}
		// Acked, the deleted_messages message counts for nothing, and r2
		// still counts its one message: two more fit, the third overflows.
		for i := range max {
			if e := enq(db, "r1", "c"+strconv.Itoa(i)); e.Discarded != 0 {
				t.Fatalf("c%d discarded %d after the ack", i, e.Discarded)
			}
		}
		for i := range max - 1 {
			if e := enq(db, "r2", "o"+strconv.Itoa(i)); e.Discarded != 0 {
				t.Fatalf("r2 message %d discarded %d", i, e.Discarded)
			}
		}
		if e := enq(db, "r2", "o-over"); e.Discarded != max+1 {
			t.Fatalf("r2 overflow discarded %d, want %d", e.Discarded, max+1)
		}
	}},
	// CollapseKeyBound: past Message.MaxCollapseKeys distinct keys the
	// oldest collapsible message of the registration is deleted; a key
	// already queued only replaces its own message; other registrations,
	// messages without a key and the reserved deleted_messages key are
	// neither counted nor deleted; 0 is unbounded.
	{"CollapseKeyBound", func(t *testing.T, x *env) {
		db, ctx := x.db, x.ctx
		const max = 4
		enq := func(e *store.Enqueue) *store.Enqueue {
			t.Helper()
			if err := db.Enqueue(ctx, e); err != nil {
				t.Fatal(err)
			}
			return e
		}
		pending := func(want ...string) []store.Message {
			t.Helper()
			p, _ := db.Pending("d1", 0, 0, 0)
			if !slices.Equal(ids(p), want) {
				t.Fatalf("queued %v, want %v", ids(p), want)
			}
			return p
		}
		enq(&store.Enqueue{Messages: []store.Message{msg("d1", "r1", "plain")}})
		var seqs []uint64
		for i := 1; i <= 6; i++ {
			id := "k" + strconv.Itoa(i)
			e := enq(collapsing("r1", id, id, max))
			if want := min(i-min(i, max), 1); e.Evicted != want {
				t.Fatalf("%s evicted %d, want %d", id, e.Evicted, want)
			}
			seqs = append(seqs, e.Messages[0].Seq)
		}
		pending("plain", "k3", "k4", "k5", "k6")
		if _, err := db.Ack(ctx, "d1", seqs[0], nil); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Ack of an evicted message: %v, want ErrNotFound", err)
		}
		// A key already queued replaces its own message, evicting nothing.
		if e := enq(collapsing("r1", "k4b", "k4", max)); e.Evicted != 0 {
			t.Fatalf("replacing k4 evicted %d", e.Evicted)
		}
		pending("plain", "k3", "k5", "k6", "k4b")
		// Another registration on the same device has its own four.
		for i := 1; i <= max; i++ {
			if e := enq(collapsing("r2", "o"+strconv.Itoa(i), "k"+strconv.Itoa(i), max)); e.Evicted != 0 {
				t.Fatalf("r2 key %d evicted %d", i, e.Evicted)
			}
		}
		pending("plain", "k3", "k5", "k6", "k4b", "o1", "o2", "o3", "o4")
		// deleted_messages (reserved key) neither counts nor goes.
		enq(overflowing("r1", "over", 1))
		pending("k3", "k5", "k6", "k4b", "o1", "o2", "o3", "o4", "deleted-over")
		if e := enq(collapsing("r1", "k7", "k7", max)); e.Evicted != 1 {
			t.Fatalf("k7 evicted %d, want 1", e.Evicted)
		}
		pending("k5", "k6", "k4b", "o1", "o2", "o3", "o4", "deleted-over", "k7")
		// An ack frees a slot: the next new key evicts nothing.
		p := pending("k5", "k6", "k4b", "o1", "o2", "o3", "o4", "deleted-over", "k7")
		if _, err := db.Ack(ctx, "d1", p[0].Seq, nil); err != nil {
			t.Fatal(err)
		}
		if e := enq(collapsing("r1", "k8", "k8", max)); e.Evicted != 0 {
			t.Fatalf("k8 after an ack evicted %d", e.Evicted)
		}
		// Unbounded: every key stays.
		for i := 1; i <= 6; i++ {
			if e := enq(collapsing("r3", "u"+strconv.Itoa(i), "k"+strconv.Itoa(i), 0)); e.Evicted != 0 {
				t.Fatalf("unbounded key %d evicted %d", i, e.Evicted)
			}
		}
		p, _ = db.Pending("d1", 0, 0, 0)
		if got := ids(p); len(got) != 15 || got[14] != "u6" {
			t.Fatalf("after six unbounded keys: %v", got)
		}
	}},
}

// collapsing returns an Enqueue of one message of reg on d1 with collapse
// key ck, under a bound of max collapse keys per registration.
func collapsing(reg, id, ck string, max int) *store.Enqueue {
	m := msg("d1", reg, id)
	m.CollapseKey, m.MaxCollapseKeys = ck, max
	return &store.Enqueue{Messages: []store.Message{m}}
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
