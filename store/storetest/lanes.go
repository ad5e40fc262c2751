package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/ccsd/ccsd/store"
)

// laneTests pin PendingLane (the package documentation, "Lanes"): each
// lane lists exactly its messages, in Seq order, after its own cursor,
// with the expiry rule, and a message leaves its lane with its delete.
var laneTests = []test{
	{"LanesListTheirMessagesInOrder", func(t *testing.T, x *env) {
		db, ctx := x.db, x.ctx
		now := x.clk.ms()
		kinds := []struct {
			id         string
			high, idle bool
		}{{"n1", false, false}, {"h1", true, false}, {"n2", false, false}, {"i1", false, true}, {"hi1", true, true}, {"h2", true, false}}
		for _, k := range kinds {
			m := msg("d1", "r1", k.id)
			m.High, m.DelayWhileIdle = k.high, k.idle
			if err := db.Enqueue(ctx, &store.Enqueue{Messages: []store.Message{m}}); err != nil {
				t.Fatal(err)
			}
		}
		all, err := db.Pending("d1", 0, 0, now)
		if err != nil || len(all) != len(kinds) {
			t.Fatalf("Pending = %v, %v", ids(all), err)
		}
		for i, k := range kinds {
			if all[i].High != k.high || all[i].DelayWhileIdle != k.idle {
				t.Fatalf("%s read back High %v DelayWhileIdle %v", k.id, all[i].High, all[i].DelayWhileIdle)
			}
		}
		laneIs(t, db, store.LaneUrgent, 0, 0, now, "h1", "h2")
		laneIs(t, db, store.LaneIdle, 0, 0, now, "i1", "hi1")
		laneIs(t, db, store.LaneNormal, 0, 0, now)
		laneIs(t, db, store.LaneUrgent, all[1].Seq, 0, now, "h2")
		laneIs(t, db, store.LaneIdle, 0, 1, now, "i1")
		got, err := db.PendingLane("d2", store.LaneUrgent, 0, 0, now)
		if err != nil || len(got) != 0 {
			t.Fatalf("d2 urgent = %v, %v", ids(got), err)
		}
		u, _ := db.PendingLane("d1", store.LaneUrgent, 0, 1, now)
		if len(u) != 1 || u[0].Seq != all[1].Seq || string(u[0].Payload) != string(all[1].Payload) || !u[0].High {
			t.Fatalf("urgent read %+v, want the same record as Pending's %+v", u, all[1])
		}
	}},
	{"LanesLoseDeletedMessages", func(t *testing.T, x *env) {
		db, ctx := x.db, x.ctx
		now := x.clk.ms()
		put := func(id, ck string, expires int64) uint64 {
			m := msg("d1", "r1", id)
			m.High, m.CollapseKey, m.Expires = true, ck, expires
			e := &store.Enqueue{Messages: []store.Message{m}}
			if err := db.Enqueue(ctx, e); err != nil {
				t.Fatal(err)
			}
			return e.Messages[0].Seq
		}
		acked := put("a", "", 0)
		put("c-old", "k", 0)
		put("short", "", now+1000)
		put("c-new", "k", 0) // replaces c-old
		put("keep", "", 0)
		if _, err := db.Ack(ctx, "d1", acked, nil); err != nil {
			t.Fatal(err)
		}
		laneIs(t, db, store.LaneUrgent, 0, 0, now, "short", "c-new", "keep")
		x.clk.Advance(2 * time.Second)
		now = x.clk.ms()
		laneIs(t, db, store.LaneUrgent, 0, 0, now, "c-new", "keep") // expired: skipped before any sweep
		if _, err := db.Sweep(ctx, now); err != nil {
			t.Fatal(err)
		}
		laneIs(t, db, store.LaneUrgent, 0, 0, now, "c-new", "keep")
		// What is swept is gone from the lane for a reader that cannot
		// see it expired either.
		laneIs(t, db, store.LaneUrgent, 0, 0, 0, "c-new", "keep")
	}},
}

// laneIs fails t unless lane of d1 after after lists want.
func laneIs(t *testing.T, db store.Backend, lane store.Lane, after uint64, limit int, now int64, want ...string) {
	t.Helper()
	got, err := db.PendingLane("d1", lane, after, limit, now)
	if err != nil || !slices.Equal(ids(got), want) {
		t.Fatalf("PendingLane(%d, after %d, limit %d) = %v, %v; want %v", lane, after, limit, ids(got), err, want)
	}
}
