package bolt

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/ccsd/ccsd/store"
)

func openTest(t testing.TB, opts Options) (*DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ccsd.db")
	db, err := Open(path, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db, path
}

var ctx = context.Background()

func TestSenders(t *testing.T) {
	db, _ := openTest(t, Options{})
	now := time.Now()
	for _, id := range []string{"222", "111"} {
		if err := db.PutSender(store.Sender{ID: id, KeyHash: []byte("h" + id), Created: now}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.PutSender(store.Sender{ID: "111"}); !errors.Is(err, store.ErrExists) {
		t.Fatalf("duplicate PutSender: %v, want store.ErrExists", err)
	}
	s, err := db.Sender("111")
	if err != nil || !bytes.Equal(s.KeyHash, []byte("h111")) || !s.Created.Equal(now) || s.Revoked {
		t.Fatalf("store.Sender = %+v, %v", s, err)
	}
	if _, err := db.Sender("nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Sender(nope): %v", err)
	}
	if err := db.RevokeSender("222"); err != nil {
		t.Fatal(err)
	}
	if err := db.RevokeSender("nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("RevokeSender(nope): %v", err)
	}
	all, err := db.Senders()
	if err != nil || len(all) != 2 || all[0].ID != "111" || all[1].ID != "222" || !all[1].Revoked || all[0].Revoked {
		t.Fatalf("Senders = %+v, %v", all, err)
	}
}

func TestDevices(t *testing.T) {
	db, _ := openTest(t, Options{})
	if err := db.PutDevice(store.Device{ID: "d1", SecretHash: []byte("s")}); err != nil {
		t.Fatal(err)
	}
	if err := db.PutDevice(store.Device{ID: "d1"}); !errors.Is(err, store.ErrExists) {
		t.Fatalf("dup: %v", err)
	}
	d, err := db.Device("d1")
	if err != nil || string(d.SecretHash) != "s" || !d.Created.IsZero() {
		t.Fatalf("store.Device = %+v, %v", d, err)
	}
	if _, err := db.Device("d2"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Device(d2): %v", err)
	}
}

func TestRegistrations(t *testing.T) {
	db, _ := openTest(t, Options{})
	r1 := store.Registration{ID: "r1", DeviceID: "d1", SenderID: "s1", App: "com.a", Created: time.Unix(100, 5)}
	got, err := db.Register(r1)
	if err != nil || got != r1 {
		t.Fatalf("Register = %+v, %v", got, err)
	}
	// Same (device, sender, app): the existing token comes back.
	got, err = db.Register(store.Registration{ID: "r2", DeviceID: "d1", SenderID: "s1", App: "com.a"})
	if err != nil || got.ID != "r1" {
		t.Fatalf("re-Register = %+v, %v; want r1", got, err)
	}
	if _, err := db.Registration("r2"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("r2 should not exist: %v", err)
	}
	// Taken id for another triple.
	if _, err := db.Register(store.Registration{ID: "r1", DeviceID: "d1", SenderID: "s2", App: "com.a"}); !errors.Is(err, store.ErrExists) {
		t.Fatalf("id clash: %v", err)
	}
	if got, err := db.FindRegistration("d1", "s1", "com.a"); err != nil || got.ID != "r1" {
		t.Fatalf("Find = %+v, %v", got, err)
	}
	if _, err := db.FindRegistration("d1", "s1", "com.b"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Find other app: %v", err)
	}
	if err := db.Unregister(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Unregister(nope): %v", err)
	}
	if err := db.Unregister(ctx, "r1"); err != nil {
		t.Fatal(err)
	}
	if err := db.Unregister(ctx, "r1"); err != nil {
		t.Fatalf("second Unregister: %v", err)
	}
	got, err = db.Registration("r1")
	if !errors.Is(err, store.ErrUnregistered) || got != r1 {
		t.Fatalf("Registration(r1) after unregister = %+v, %v", got, err)
	}
	if _, err := db.FindRegistration("d1", "s1", "com.a"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Find after unregister: %v", err)
	}
	// A new registration for the same triple gets a new token.
	got, err = db.Register(store.Registration{ID: "r3", DeviceID: "d1", SenderID: "s1", App: "com.a"})
	if err != nil || got.ID != "r3" {
		t.Fatalf("Register after unregister = %+v, %v", got, err)
	}
	if _, err := db.Register(store.Registration{ID: "r1", DeviceID: "d9", SenderID: "s1", App: "x"}); !errors.Is(err, store.ErrExists) {
		t.Fatalf("reusing a tombstoned id: %v", err)
	}
}

func msg(dev, reg, id string) store.Message {
	return store.Message{DeviceID: dev, RegID: reg, SenderID: "s1", MessageID: id, Payload: []byte(`{"id":"` + id + `"}`)}
}

func ids(ms []store.Message) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.MessageID)
	}
	return out
}

func TestEnqueuePendingAck(t *testing.T) {
	db, _ := openTest(t, Options{})
	now := time.Now().UnixMilli()
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
}

func TestAckReceipt(t *testing.T) {
	db, _ := openTest(t, Options{})
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
}

func TestUpstream(t *testing.T) {
	db, _ := openTest(t, Options{})
	now := time.Now().UnixMilli()
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
}

func TestCollapse(t *testing.T) {
	db, _ := openTest(t, Options{})
	put := func(reg, id, ck string) uint64 {
		m := msg("d1", reg, id)
		m.CollapseKey = ck
		m.Expires = time.Now().UnixMilli() + 60000
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
	assertIndexes(t, db)
}

func TestDedup(t *testing.T) {
	db, _ := openTest(t, Options{})
	now := time.Now().UnixMilli()
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
	short := &store.Enqueue{SenderID: "s1", MessageID: "m3", DedupUntil: time.Now().UnixMilli() + 30}
	if err := db.Enqueue(ctx, short); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	short.DedupUntil = time.Now().UnixMilli() + 60000
	if err := db.Enqueue(ctx, short); err != nil {
		t.Fatalf("after window: %v", err)
	}
	if err := db.Enqueue(ctx, short); !errors.Is(err, store.ErrDuplicate) {
		t.Fatalf("renewed window: %v", err)
	}
	assertIndexes(t, db)
}

func TestUnregisterDeletesQueued(t *testing.T) {
	db, _ := openTest(t, Options{})
	for _, r := range []store.Registration{{ID: "r1", DeviceID: "d1", SenderID: "s1", App: "a"}, {ID: "r2", DeviceID: "d1", SenderID: "s1", App: "b"}} {
		if _, err := db.Register(r); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now().UnixMilli()
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
	assertIndexes(t, db)
}

func TestReopenDurable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ccsd.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	db.PutSender(store.Sender{ID: "s1", KeyHash: []byte("k")})
	db.PutDevice(store.Device{ID: "d1"})
	db.Register(store.Registration{ID: "r1", DeviceID: "d1", SenderID: "s1", App: "a"})
	db.Register(store.Registration{ID: "r2", DeviceID: "d1", SenderID: "s1", App: "b"})
	db.Unregister(ctx, "r2")
	if err := db.Enqueue(ctx, &store.Enqueue{SenderID: "s1", MessageID: "m1", DedupUntil: time.Now().UnixMilli() + 60000, Messages: []store.Message{msg("d1", "r1", "m1")}}); err != nil {
		t.Fatal(err)
	}
	db.PushUpstream(ctx, &store.Upstream{SenderID: "s1", MessageID: "u1"})
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := db.PutDevice(store.Device{ID: "d2"}); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("write after Close: %v", err)
	}
	if _, err := db.Device("d1"); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("read after Close: %v", err)
	}

	db, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if s, err := db.Sender("s1"); err != nil || string(s.KeyHash) != "k" {
		t.Fatalf("store.Sender after reopen: %+v, %v", s, err)
	}
	if _, err := db.Device("d1"); err != nil {
		t.Fatal(err)
	}
	if r, err := db.FindRegistration("d1", "s1", "a"); err != nil || r.ID != "r1" {
		t.Fatalf("Find after reopen: %+v %v", r, err)
	}
	if _, err := db.Registration("r2"); !errors.Is(err, store.ErrUnregistered) {
		t.Fatalf("tombstone after reopen: %v", err)
	}
	if p, _ := db.Pending("d1", 0, 0, 0); len(p) != 1 || p[0].MessageID != "m1" {
		t.Fatalf("Pending after reopen: %+v", p)
	}
	if up, _ := db.PendingUpstream("s1", 0, 0, 0); len(up) != 1 {
		t.Fatalf("upstream after reopen: %+v", up)
	}
	if err := db.Enqueue(ctx, &store.Enqueue{SenderID: "s1", MessageID: "m1", DedupUntil: time.Now().UnixMilli() + 60000}); !errors.Is(err, store.ErrDuplicate) {
		t.Fatalf("dedup after reopen: %v", err)
	}
	e := &store.Enqueue{Messages: []store.Message{msg("d1", "r1", "m2")}}
	if err := db.Enqueue(ctx, e); err != nil || e.Messages[0].Seq != 2 {
		t.Fatalf("seq after reopen: %d, %v", e.Messages[0].Seq, err)
	}
}

func TestLocked(t *testing.T) {
	_, path := openTest(t, Options{})
	start := time.Now()
	db2, err := Open(path, Options{LockTimeout: 100 * time.Millisecond})
	if !errors.Is(err, store.ErrLocked) {
		if db2 != nil {
			db2.Close()
		}
		t.Fatalf("second Open: %v, want store.ErrLocked", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("second Open took %v", d)
	}
}
