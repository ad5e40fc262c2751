package bolt

import (
	"errors"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/ccsd/ccsd/store"
)

func testGroup(key, sender, name string, members ...string) store.Group {
	return store.Group{Key: key, Name: name, SenderID: sender, App: "com.example", Members: members, Created: time.Unix(1700000000, 42)}
}

func sameGroup(a, b store.Group) bool {
	return a.Key == b.Key && a.Name == b.Name && a.SenderID == b.SenderID && a.App == b.App &&
		a.Created.Equal(b.Created) && slices.Equal(a.Members, b.Members)
}

func TestGroupReopenDurable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ccsd.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := testGroup("k", "s1", "n", "r1", "r2")
	if err := db.CreateGroup(ctx, want); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateGroup(ctx, testGroup("gone", "s1", "gone", "r1")); err != nil {
		t.Fatal(err)
	}
	if _, err := db.UpdateGroup(ctx, "k", func(g *store.Group) error { g.Members = append(g.Members, "r3"); return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := db.UpdateGroup(ctx, "gone", func(g *store.Group) error { g.Members = nil; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Group("k"); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("store.Group after Close: %v", err)
	}
	if _, err := db.UpdateGroup(ctx, "k", func(*store.Group) error { return nil }); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("UpdateGroup after Close: %v", err)
	}

	db, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	want.Members = []string{"r1", "r2", "r3"}
	if got, err := db.GroupByName("s1", "n"); err != nil || !sameGroup(got, want) {
		t.Fatalf("after reopen: %+v, %v; want %+v", got, err, want)
	}
	if _, err := db.GroupByName("s1", "gone"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted group after reopen: %v", err)
	}
	assertGroupIndex(t, db)
}

// TestUpdateGroupRerun: when a neighbour op in the same batch fails after
// writing, the batch is re-run without it; UpdateGroup's fn then runs again
// on a fresh copy of the stored group, and the member is added once.
func TestUpdateGroupRerun(t *testing.T) {
	db, _ := openTest(t, Options{})
	if err := db.CreateGroup(ctx, testGroup("k", "s1", "n", "r1")); err != nil {
		t.Fatal(err)
	}
	// Hold the committer so the next two ops form one batch.
	entered, gate := make(chan struct{}), make(chan struct{})
	held := make(chan error, 1)
	go func() {
		held <- db.update(ctx, func(*bbolt.Tx) error { close(entered); <-gate; return nil })
	}()
	<-entered

	var calls atomic.Int32
	res := make(chan error, 1)
	go func() {
		_, err := db.UpdateGroup(ctx, "k", func(g *store.Group) error {
			calls.Add(1)
			g.Members = append(g.Members, "r2")
			return nil
		})
		res <- err
	}()
	waitQueued(t, db, 1)
	boom := errors.New("boom")
	failed := make(chan error, 1)
	go func() {
		failed <- db.update(ctx, func(tx *bbolt.Tx) error {
			if err := tx.Bucket(bucketMeta).Put([]byte("scratch"), []byte("x")); err != nil {
				return err
			}
			return boom // dirty failure: the batch is rolled back and re-run
		})
	}()
	waitQueued(t, db, 2)
	close(gate)
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	if err := <-failed; !errors.Is(err, boom) {
		t.Fatalf("failing neighbour: %v", err)
	}
	if err := <-res; err != nil {
		t.Fatalf("UpdateGroup: %v", err)
	}
	if c := calls.Load(); c != 2 {
		t.Errorf("fn ran %d times, want 2 (once in the failed batch, once in the re-run)", c)
	}
	g, err := db.Group("k")
	if err != nil || !slices.Equal(g.Members, []string{"r1", "r2"}) {
		t.Fatalf("after re-run: %+v, %v", g, err)
	}
}

func TestGroupCodec(t *testing.T) {
	for _, g := range []store.Group{
		testGroup("k", "s", "n", "a", "b", "c"),
		{Key: "k", Name: "n", SenderID: "s", Members: []string{"x"}}, // zero Created, empty App
	} {
		got, err := decodeGroup(encodeGroup(&g))
		if err != nil || !sameGroup(got, g) || got.Created.IsZero() != g.Created.IsZero() {
			t.Errorf("round trip %+v = %+v, %v", g, got, err)
		}
	}
	b := encodeGroup(&store.Group{Key: "k", Name: "n", SenderID: "s", Members: []string{"member"}})
	for i := range len(b) - 1 {
		if _, err := decodeGroup(b[:i]); !errors.Is(err, errCorrupt) {
			t.Errorf("truncated at %d: %v", i, err)
		}
	}
	// A member count far beyond the bytes left is corruption, not an
	// allocation.
	huge := encodeGroup(&store.Group{Key: "k"})
	huge = append(huge[:len(huge)-1], 0xff, 0xff, 0xff, 0xff, 0x0f)
	if _, err := decodeGroup(huge); !errors.Is(err, errCorrupt) {
		t.Errorf("huge member count: %v", err)
	}
}

// assertGroupIndex checks that the name index and the groups agree: every
// name points to a group with that sender and name, and every group's name
// points back to it.
func assertGroupIndex(t *testing.T, db *DB) {
	t.Helper()
	err := db.view(func(tx *bbolt.Tx) error {
		groups, names := tx.Bucket(bucketGroups), tx.Bucket(bucketGroupNames)
		if groups == nil || names == nil {
			return nil
		}
		n := 0
		err := names.ForEach(func(k, v []byte) error {
			n++
			g, err := getGroup(tx, v)
			if err != nil {
				t.Errorf("name %x -> %s: %v", k, v, err)
				return nil
			}
			if string(groupNameKey(g.SenderID, g.Name)) != string(k) {
				t.Errorf("name %x -> group %s named %s/%s", k, v, g.SenderID, g.Name)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if m := groups.Stats().KeyN; m != n {
			t.Errorf("%d groups, %d names", m, n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// waitQueued waits, with a deadline, until n ops wait for the committer.
func waitQueued(t *testing.T, db *DB, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); len(db.reqs) < n; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d ops queued for the committer after 10s, want %d", len(db.reqs), n)
		}
	}
}
