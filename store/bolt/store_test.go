package bolt

import (
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
