package storetest

import (
	"errors"
	"strconv"
	"testing"

	"github.com/ccsd/ccsd/store"
)

var upstreamTests = []test{
	{"Upstream", func(t *testing.T, x *env) {
		db, ctx := x.db, x.ctx
		now := x.clk.ms()
		for i, exp := range []int64{0, now - 1, now + 10000} {
			u := &store.Upstream{SenderID: "s1", MessageID: string(rune('a' + i)), Expires: exp, Payload: []byte("{}")}
			if err := db.PushUpstream(ctx, u); err != nil || u.Seq != uint64(i+1) {
				t.Fatalf("PushUpstream: seq %d, %v", u.Seq, err)
			}
		}
		up, err := db.PendingUpstream("s1", 0, 10, now)
		if err != nil || len(up) != 2 || up[0].MessageID != "a" || up[1].MessageID != "c" {
			t.Fatalf("PendingUpstream = %+v, %v", up, err)
		}
		if up, _ := db.PendingUpstream("s1", 1, 10, now); len(up) != 1 || up[0].Seq != 3 {
			t.Fatalf("PendingUpstream after 1 = %+v", up)
		}
		if up, _ := db.PendingUpstream("s2", 0, 10, now); len(up) != 0 {
			t.Fatalf("other sender sees %+v", up)
		}
		if err := db.AckUpstream(ctx, "s1", 1); err != nil {
			t.Fatal(err)
		}
		if err := db.AckUpstream(ctx, "s1", 1); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("second AckUpstream: %v", err)
		}
		if err := db.AckUpstream(ctx, "s9", 1); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("AckUpstream(s9): %v", err)
		}
	}},
	// UpstreamUsage: the usage of a sender's upstream queue follows every
	// push, receipt, ack and sweep. Bytes is the backend's own measure: it
	// only has to grow with each record and fall back to 0 when empty.
	{"UpstreamUsage", func(t *testing.T, x *env) {
		db, ctx := x.db, x.ctx
		now := x.clk.ms()
		var last int64
		grew := func(what string, want int) {
			t.Helper()
			got := db.UpstreamUsage("s1")
			if got.Messages != want || got.Bytes <= last {
				t.Fatalf("after %s: %+v, want %d messages and more than %d bytes", what, got, want, last)
			}
			last = got.Bytes
		}
		for i := range 5 {
			u := &store.Upstream{SenderID: "s1", MessageID: "u" + strconv.Itoa(i), Expires: now + 60000, Payload: []byte(`{"n":` + strconv.Itoa(i) + `}`)}
			if i == 4 {
				u.Expires = now - 1 // swept below
			}
			if err := db.PushUpstream(ctx, u); err != nil {
				t.Fatal(err)
			}
			grew("push "+strconv.Itoa(i), i+1)
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
		grew("a receipt", 6)
		// A refused ack pushes no receipt.
		if _, err := db.Ack(ctx, "d1", e.Messages[0].Seq, rc); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("second ack: %v", err)
		}
		if got := db.UpstreamUsage("s1"); got.Messages != 6 || got.Bytes != last {
			t.Fatalf("a refused ack was counted: %+v", got)
		}
		if err := db.AckUpstream(ctx, "s1", 1); err != nil {
			t.Fatal(err)
		}
		if st, err := db.Sweep(ctx, now); err != nil || st.Upstream != 1 {
			t.Fatalf("sweep: %+v, %v", st, err)
		}
		if got := db.UpstreamUsage("s1"); got.Messages != 4 || got.Bytes >= last {
			t.Fatalf("after an ack and a sweep: %+v, want 4 messages and fewer bytes", got)
		}
		for seq := uint64(2); seq <= 6; seq++ {
			if seq != 5 {
				if err := db.AckUpstream(ctx, "s1", seq); err != nil {
					t.Fatalf("ack %d: %v", seq, err)
				}
			}
		}
		if got := db.UpstreamUsage("s1"); got != (store.QueueUsage{}) {
			t.Fatalf("emptied queue: %+v", got)
		}
	}},
}
