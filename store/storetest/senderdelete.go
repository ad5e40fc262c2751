package storetest

import (
	"context"
	"errors"
	"testing"

	"github.com/ccsd/ccsd/store"
)

// RunSenderDelete runs the rules of store.SenderDeleter against a backend
// that implements it (check as for RunChecked; nil for none).
func RunSenderDelete(t *testing.T, open Opener, check Check) {
	t.Run("SenderDelete", func(t *testing.T) {
		clk := &Clock{now: Epoch}
		db := open(t, store.Options{Now: clk.Now})
		defer db.Close()
		del, ok := db.(store.SenderDeleter)
		if !ok {
			t.Fatalf("%T does not implement store.SenderDeleter", db)
		}
		testSenderDelete(t, &env{db: db, clk: clk, ctx: context.Background()}, del)
		if check != nil && !t.Failed() {
			check(t, db)
		}
	})
}

// senderFixture is two senders sharing a device: s1 (to delete) with a
// registration holding two queued messages, an upstream message and a
// group; s2 with the same of its own, which must survive.
func senderFixture(t *testing.T, x *env) {
	t.Helper()
	db, ctx := x.db, x.ctx
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(db.PutDevice(store.Device{ID: "d1", SecretHash: []byte("s")}))
	for _, s := range []string{"s1", "s2"} {
		must(db.PutSender(store.Sender{ID: s, KeyHash: []byte("h")}))
		_, err := db.Register(store.Registration{ID: "r-" + s, DeviceID: "d1", SenderID: s, App: "a"})
		must(err)
		for _, id := range []string{"m1", "m2"} {
			m := msg("d1", "r-"+s, s+"-"+id)
			m.SenderID = s
			must(db.Enqueue(ctx, &store.Enqueue{SenderID: s, MessageID: m.MessageID, DedupUntil: x.clk.ms() + 60000, Messages: []store.Message{m}}))
		}
		must(db.PushUpstream(ctx, &store.Upstream{SenderID: s, MessageID: "u-" + s, Payload: []byte("{}")}))
		must(db.CreateGroup(ctx, store.Group{Key: "k-" + s, Name: "user", SenderID: s, App: "a", Members: []string{"r-" + s}}))
		must(db.PutServiceKey(ctx, svcKey("key-"+s, s), 0))
		_, err = db.PutAccessToken(ctx, store.AccessToken{Hash: tokenHash("tok-" + s), SenderID: s, KeyID: "key-" + s, Expires: x.clk.ms() + 60000}, 0, x.clk.ms())
		must(err)
	}
}

func testSenderDelete(t *testing.T, x *env, del store.SenderDeleter) {
	db, ctx := x.db, x.ctx
	senderFixture(t, x)
	if _, err := del.DeleteSender(ctx, "nope", true); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("DeleteSender(nope): %v, want ErrNotFound", err)
	}
	if _, err := del.DeleteSender(ctx, "s1", false); !errors.Is(err, store.ErrHasRegistrations) {
		t.Fatalf("DeleteSender(s1) without force: %v, want ErrHasRegistrations", err)
	}
	if _, err := db.FindRegistration("d1", "s1", "a"); err != nil {
		t.Fatalf("a refused delete changed the registration: %v", err)
	}
	got, err := del.DeleteSender(ctx, "s1", true)
	want := store.SenderDeleted{Registrations: 1, Messages: 2, Upstream: 1, Groups: 1}
	if err != nil || got != want {
		t.Fatalf("DeleteSender(s1, force) = %+v, %v; want %+v", got, err, want)
	}
	assertSenderGone(t, x, "s1")
	assertSenderIntact(t, x, "s2")

	// The id can be created again, with nothing of the old one.
	if err := db.PutSender(store.Sender{ID: "s1", KeyHash: []byte("new")}); err != nil {
		t.Fatalf("PutSender after delete: %v", err)
	}
	if err := db.PushUpstream(ctx, &store.Upstream{SenderID: "s1", MessageID: "u-again", Payload: []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	if up, err := db.PendingUpstream("s1", 1, 10, x.clk.ms()); err != nil || len(up) != 1 || up[0].MessageID != "u-again" {
		t.Fatalf("upstream of the new s1 after seq 1: %+v, %v (sequence numbers must keep growing)", up, err)
	}
	// A sender whose registrations are all unregistered needs no force.
	if err := db.Unregister(ctx, "r-s2"); err != nil {
		t.Fatal(err)
	}
	if got, err := del.DeleteSender(ctx, "s2", false); err != nil || got.Registrations != 0 {
		t.Fatalf("DeleteSender(s2) with tombstones only: %+v, %v", got, err)
	}
}

func assertSenderGone(t *testing.T, x *env, s string) {
	t.Helper()
	db := x.db
	if _, err := db.Sender(s); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Sender(%s) after delete: %v", s, err)
	}
	if _, err := db.FindRegistration("d1", s, "a"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("registration of %s still found: %v", s, err)
	}
	if _, err := db.Registration("r-" + s); !errors.Is(err, store.ErrUnregistered) {
		t.Errorf("Registration(r-%s): %v, want a tombstone (ErrUnregistered)", s, err)
	}
	if up, err := db.PendingUpstream(s, 0, 10, x.clk.ms()); err != nil || len(up) != 0 {
		t.Errorf("upstream of %s: %+v, %v", s, up, err)
	}
	if u := db.UpstreamUsage(s); u.Messages != 0 || u.Bytes != 0 {
		t.Errorf("upstream usage of %s: %+v", s, u)
	}
	if _, err := db.Group("k-" + s); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("group of %s: %v", s, err)
	}
	if _, err := db.GroupByName(s, "user"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("group name of %s: %v", s, err)
	}
	// A sender created again with the same id must not inherit the old
	// one's service-account keys: they would sign it in.
	if ks, err := db.ServiceKeys(s); err != nil || len(ks) != 0 {
		t.Errorf("service keys of %s after delete: %+v, %v", s, ks, err)
	}
	if _, err := db.ServiceKey("key-" + s); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ServiceKey(key-%s) after delete: %v", s, err)
	}
	if _, err := db.AccessToken(tokenHash("tok-"+s), x.clk.ms()); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("access token of %s after delete: %v", s, err)
	}
	ms, err := db.Pending("d1", 0, 100, x.clk.ms())
	for _, m := range ms {
		if m.SenderID == s {
			t.Errorf("message %s of %s still queued (%v)", m.MessageID, s, err)
		}
	}
}

func assertSenderIntact(t *testing.T, x *env, s string) {
	t.Helper()
	db := x.db
	if _, err := db.Sender(s); err != nil {
		t.Errorf("Sender(%s): %v", s, err)
	}
	if _, err := db.FindRegistration("d1", s, "a"); err != nil {
		t.Errorf("registration of %s: %v", s, err)
	}
	if up, err := db.PendingUpstream(s, 0, 10, x.clk.ms()); err != nil || len(up) != 1 {
		t.Errorf("upstream of %s: %+v, %v", s, up, err)
	}
	if _, err := db.GroupByName(s, "user"); err != nil {
		t.Errorf("group of %s: %v", s, err)
	}
	if _, err := db.AccessToken(tokenHash("tok-"+s), x.clk.ms()); err != nil {
		t.Errorf("access token of %s: %v", s, err)
	}
	ms, _ := db.Pending("d1", 0, 100, x.clk.ms())
	n := 0
	for _, m := range ms {
		if m.SenderID == s {
			n++
		}
	}
	if n != 2 {
		t.Errorf("%d messages of %s queued, want 2", n, s)
	}
}
