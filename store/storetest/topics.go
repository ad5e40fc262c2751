package storetest

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/ccsd/ccsd/store"
)

var topicTests = []test{
	{"TopicSubscribeIdempotent", func(t *testing.T, x *env) {
		db, ctx := x.db, x.ctx
		mustReg(t, db, "r1", "d1", "s1")
		mustReg(t, db, "r2", "d2", "s1")
		errs, err := db.Subscribe(ctx, "s1", "news", []string{"r1", "nope", "r2"}, 0)
		if err != nil || errs[0] != nil || !errors.Is(errs[1], store.ErrNotFound) || errs[2] != nil {
			t.Fatalf("Subscribe = %v, %v", errs, err)
		}
		first := x.clk.Now()
		x.clk.Advance(48 * time.Hour)
		if errs, err := db.Subscribe(ctx, "s1", "news", []string{"r1"}, 0); err != nil || errs[0] != nil {
			t.Fatalf("Subscribe again = %v, %v", errs, err)
		}
		subs, err := db.Subscriptions("r1")
		if err != nil || len(subs) != 1 || subs[0].Topic != "news" || !subs[0].Added.Equal(first) {
			t.Fatalf("Subscriptions = %+v, %v; want news added %v (the first add kept)", subs, err, first)
		}
		if got := subscriberIDs(t, db, "s1", "news", "", 0); !slices.Equal(got, []string{"r1", "r2"}) {
			t.Fatalf("Subscribers = %v", got)
		}
		for range 2 { // unsubscribing twice is a no-op
			if errs, err := db.Unsubscribe(ctx, "s1", "news", []string{"r1"}); err != nil || errs[0] != nil {
				t.Fatalf("Unsubscribe = %v, %v", errs, err)
			}
		}
		if got := subscriberIDs(t, db, "s1", "news", "", 0); !slices.Equal(got, []string{"r2"}) {
			t.Fatalf("Subscribers after unsubscribe = %v", got)
		}
		if subs, _ := db.Subscriptions("r1"); len(subs) != 0 {
			t.Fatalf("Subscriptions after unsubscribe = %+v", subs)
		}
	}},
	{"TopicSenderIsolation", func(t *testing.T, x *env) {
		db, ctx := x.db, x.ctx
		mustReg(t, db, "r1", "d1", "s1")
		mustReg(t, db, "r2", "d2", "s2")
		// s1 may not subscribe (or unsubscribe) s2's registration.
		if errs, _ := db.Subscribe(ctx, "s1", "news", []string{"r2"}, 0); !errors.Is(errs[0], store.ErrNotFound) {
			t.Fatalf("Subscribe of another sender's registration = %v", errs)
		}
		if errs, _ := db.Unsubscribe(ctx, "s1", "news", []string{"r2"}); !errors.Is(errs[0], store.ErrNotFound) {
			t.Fatalf("Unsubscribe of another sender's registration = %v", errs)
		}
		db.Subscribe(ctx, "s1", "news", []string{"r1"}, 0)
		db.Subscribe(ctx, "s2", "news", []string{"r2"}, 0)
		if got := subscriberIDs(t, db, "s1", "news", "", 0); !slices.Equal(got, []string{"r1"}) {
			t.Fatalf("s1's news = %v", got)
		}
		if got := subscriberIDs(t, db, "s2", "news", "", 0); !slices.Equal(got, []string{"r2"}) {
			t.Fatalf("s2's news = %v", got)
		}
		// A topic whose name extends another's is another topic.
		if got := subscriberIDs(t, db, "s1", "new", "", 0); len(got) != 0 {
			t.Fatalf("s1's new = %v", got)
		}
	}},
	{"TopicBoundPerRegistration", func(t *testing.T, x *env) {
		db, ctx := x.db, x.ctx
		mustReg(t, db, "r1", "d1", "s1")
		for _, tp := range []string{"a", "b"} {
			if errs, _ := db.Subscribe(ctx, "s1", tp, []string{"r1"}, 2); errs[0] != nil {
				t.Fatalf("Subscribe %s = %v", tp, errs)
			}
		}
		if errs, _ := db.Subscribe(ctx, "s1", "c", []string{"r1"}, 2); !errors.Is(errs[0], store.ErrTooManyTopics) {
			t.Fatalf("third topic at bound 2 = %v", errs)
		}
		if errs, _ := db.Subscribe(ctx, "s1", "a", []string{"r1"}, 2); errs[0] != nil {
			t.Fatalf("re-subscribing at the bound = %v", errs)
		}
	}},
	{"TopicUnregisterRemovesSubscriptions", func(t *testing.T, x *env) {
		db, ctx := x.db, x.ctx
		mustReg(t, db, "r1", "d1", "s1")
		mustReg(t, db, "r2", "d1", "s2")
		db.Subscribe(ctx, "s1", "a", []string{"r1"}, 0)
		db.Subscribe(ctx, "s1", "b", []string{"r1"}, 0)
		db.Subscribe(ctx, "s2", "a", []string{"r2"}, 0)
		if err := db.Unregister(ctx, "r1"); err != nil {
			t.Fatal(err)
		}
		for _, tp := range []string{"a", "b"} {
			if got := subscriberIDs(t, db, "s1", tp, "", 0); len(got) != 0 {
				t.Fatalf("s1's %s after unregister = %v", tp, got)
			}
		}
		if subs, _ := db.Subscriptions("r1"); len(subs) != 0 {
			t.Fatalf("Subscriptions after unregister = %+v", subs)
		}
		if got := subscriberIDs(t, db, "s2", "a", "", 0); !slices.Equal(got, []string{"r2"}) {
			t.Fatalf("s2's a = %v", got)
		}
	}},
	{"TopicSubscribersCursor", func(t *testing.T, x *env) {
		db, ctx := x.db, x.ctx
		var all []string
		for i := range 25 {
			id := fmt.Sprintf("r%02d", 24-i) // registered out of order
			mustReg(t, db, id, "d"+id, "s1")
			all = append(all, id)
		}
		slices.Sort(all)
		if errs, err := db.Subscribe(ctx, "s1", "t", all, 0); err != nil || slices.ContainsFunc(errs, func(e error) bool { return e != nil }) {
			t.Fatalf("Subscribe = %v, %v", errs, err)
		}
		var got []string
		after := ""
		for {
			page := subscriberIDs(t, db, "s1", "t", after, 10)
			if len(page) == 0 {
				break
			}
			if len(page) > 10 {
				t.Fatalf("page of %d past limit 10", len(page))
			}
			got = append(got, page...)
			after = page[len(page)-1]
		}
		if !slices.Equal(got, all) {
			t.Fatalf("paged Subscribers = %v; want %v", got, all)
		}
	}},
	{"TopicJobAdvance", func(t *testing.T, x *env) {
		db, ctx := x.db, x.ctx
		j := &store.TopicJob{SenderID: "s1", Topic: "t", MessageID: "m1", Created: x.clk.Now(), Body: []byte("body")}
		if err := db.PutTopicJob(ctx, j); err != nil || j.ID == 0 {
			t.Fatalf("PutTopicJob: %v (id %d)", err, j.ID)
		}
		j2 := &store.TopicJob{SenderID: "s1", Condition: "'a' in topics", MessageID: "m2"}
		if err := db.PutTopicJob(ctx, j2); err != nil || j2.ID <= j.ID {
			t.Fatalf("second PutTopicJob: %v (id %d after %d)", err, j2.ID, j.ID)
		}
		e := &store.Enqueue{SenderID: "s1", Messages: []store.Message{msg("d1", "r1", "m1"), msg("d2", "r2", "m1")}}
		if err := db.AdvanceTopicJob(ctx, j.ID, 1, "r2", false, e); err != nil {
			t.Fatal(err)
		}
		jobs, err := db.TopicJobs()
		if err != nil || len(jobs) != 2 || jobs[0].ID != j.ID || jobs[0].Cursor != "r2" || jobs[0].Step != 1 || string(jobs[0].Body) != "body" || jobs[0].Topic != "t" {
			t.Fatalf("TopicJobs = %+v, %v", jobs, err)
		}
		for _, d := range []string{"d1", "d2"} {
			if ms, _ := db.Pending(d, 0, 0, x.clk.ms()); len(ms) != 1 || ms[0].MessageID != "m1" {
				t.Fatalf("%s's queue = %v", d, ids(ms))
			}
		}
		if err := db.AdvanceTopicJob(ctx, j.ID, 0, "", true, nil); err != nil {
			t.Fatal(err)
		}
		if jobs, _ := db.TopicJobs(); len(jobs) != 1 || jobs[0].ID != j2.ID || jobs[0].Condition != j2.Condition {
			t.Fatalf("TopicJobs after done = %+v", jobs)
		}
		err = db.AdvanceTopicJob(ctx, j.ID, 0, "x", false, &store.Enqueue{Messages: []store.Message{msg("d3", "r3", "m1")}})
		if !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("advancing a finished job = %v", err)
		}
		if n, _ := db.QueueLen("d3"); n != 0 {
			t.Fatalf("a refused advance queued %d messages", n)
		}
	}},
	{"TopicJobDedup", func(t *testing.T, x *env) {
		db, ctx := x.db, x.ctx
		until := x.clk.ms() + 60_000
		if err := db.PutTopicJob(ctx, &store.TopicJob{SenderID: "s1", Topic: "t", MessageID: "m1", DedupUntil: until}); err != nil {
			t.Fatal(err)
		}
		err := db.PutTopicJob(ctx, &store.TopicJob{SenderID: "s1", Topic: "t", MessageID: "m1", DedupUntil: until})
		if !errors.Is(err, store.ErrDuplicate) {
			t.Fatalf("a retry within the window = %v, want ErrDuplicate", err)
		}
		// The same records as Enqueue's: a direct message with that id is a duplicate too.
		if err := db.Enqueue(ctx, &store.Enqueue{SenderID: "s1", MessageID: "m1", Messages: []store.Message{msg("d1", "r1", "m1")}}); !errors.Is(err, store.ErrDuplicate) {
			t.Fatalf("Enqueue of the id = %v", err)
		}
		if err := db.PutTopicJob(ctx, &store.TopicJob{SenderID: "s2", Topic: "t", MessageID: "m1", DedupUntil: until}); err != nil {
			t.Fatalf("another sender's id: %v", err)
		}
		x.clk.Advance(2 * time.Minute)
		if err := db.PutTopicJob(ctx, &store.TopicJob{SenderID: "s1", Topic: "t", MessageID: "m1", DedupUntil: x.clk.ms() + 60_000}); err != nil {
			t.Fatalf("after the window: %v", err)
		}
		if jobs, _ := db.TopicJobs(); len(jobs) != 3 {
			t.Fatalf("%d jobs stored, want 3", len(jobs))
		}
	}},
	{"TopicMemberships", func(t *testing.T, x *env) {
		db, ctx := x.db, x.ctx
		mustReg(t, db, "r1", "d1", "s1")
		mustReg(t, db, "r2", "d2", "s1")
		db.Subscribe(ctx, "s1", "a", []string{"r1", "r2"}, 0)
		db.Subscribe(ctx, "s1", "c", []string{"r1"}, 0)
		masks, err := db.Memberships([]string{"r1", "r2", "nope"}, []string{"a", "b", "c"})
		if err != nil || !slices.Equal(masks, []uint32{0b101, 0b001, 0}) {
			t.Fatalf("Memberships = %b, %v", masks, err)
		}
	}},
}

func mustReg(t *testing.T, db store.Backend, id, dev, sender string) {
	t.Helper()
	if _, err := db.Register(store.Registration{ID: id, DeviceID: dev, SenderID: sender, App: "com.a"}); err != nil {
		t.Fatal(err)
	}
}

func subscriberIDs(t *testing.T, db store.Backend, sender, topic, after string, limit int) []string {
	t.Helper()
	regs, err := db.Subscribers(sender, topic, after, limit)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range regs {
		out = append(out, r.ID)
	}
	return out
}
