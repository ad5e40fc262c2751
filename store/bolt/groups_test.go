package bolt

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
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

func TestGroupsEmptyDatabase(t *testing.T) {
	db, _ := openTest(t, Options{})
	// The group buckets are created by the first CreateGroup: reads and
	// updates before it see "not found", not a missing bucket.
	if _, err := db.Group("k"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Group: %v", err)
	}
	if _, err := db.GroupByName("s1", "n"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GroupByName: %v", err)
	}
	called := false
	if _, err := db.UpdateGroup(ctx, "k", func(*store.Group) error { called = true; return nil }); !errors.Is(err, store.ErrNotFound) || called {
		t.Fatalf("UpdateGroup: %v (fn called %v)", err, called)
	}
}

func TestGroupCreateAndGet(t *testing.T) {
	db, _ := openTest(t, Options{})
	g := testGroup("APA91bK1", "s1", "user-1", "r1", "r2", "r1", "", "r3")
	if err := db.CreateGroup(ctx, g); err != nil {
		t.Fatal(err)
	}
	want := g
	want.Members = []string{"r1", "r2", "r3"} // repeats and empty ids dropped, order kept
	got, err := db.Group("APA91bK1")
	if err != nil || !sameGroup(got, want) {
		t.Fatalf("store.Group = %+v, %v; want %+v", got, err, want)
	}
	got, err = db.GroupByName("s1", "user-1")
	if err != nil || !sameGroup(got, want) {
		t.Fatalf("GroupByName = %+v, %v", got, err)
	}
	if _, err := db.GroupByName("s2", "user-1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("other sender's name: %v", err)
	}
	if _, err := db.Group("nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Group(nope): %v", err)
	}

	// The name is unique per sender, the key globally.
	if err := db.CreateGroup(ctx, testGroup("APA91bK2", "s1", "user-1", "r4")); !errors.Is(err, store.ErrExists) {
		t.Fatalf("same name: %v, want store.ErrExists", err)
	}
	if err := db.CreateGroup(ctx, testGroup("APA91bK1", "s1", "user-2", "r4")); !errors.Is(err, store.ErrExists) {
		t.Fatalf("same key: %v, want store.ErrExists", err)
	}
	if _, err := db.GroupByName("s1", "user-2"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("refused create left its name: %v", err)
	}
	if err := db.CreateGroup(ctx, testGroup("APA91bK3", "s2", "user-1", "r9")); err != nil {
		t.Fatalf("same name, other sender: %v", err)
	}
	// Composite name keys do not collide across the sender/name boundary.
	if err := db.CreateGroup(ctx, testGroup("APA91bK4", "s", "1user-1", "r9")); err != nil {
		t.Fatal(err)
	}
	if got, err := db.GroupByName("s1", "user-1"); err != nil || got.Key != "APA91bK1" {
		t.Fatalf("GroupByName after neighbours: %+v, %v", got, err)
	}

	for _, bad := range []store.Group{
		testGroup("", "s1", "x", "r1"),
		testGroup("k", "", "x", "r1"),
		testGroup("k", "s1", "", "r1"),
		testGroup("k", "s1", "x"),
		testGroup("k", "s1", "x", ""),
	} {
		if err := db.CreateGroup(ctx, bad); err == nil {
			t.Errorf("CreateGroup(%+v) succeeded", bad)
		}
	}
}

func TestUpdateGroup(t *testing.T) {
	db, _ := openTest(t, Options{})
	if err := db.CreateGroup(ctx, testGroup("k", "s1", "n", "r1")); err != nil {
		t.Fatal(err)
	}
	got, err := db.UpdateGroup(ctx, "k", func(g *store.Group) error {
		g.Members = append(g.Members, "r2", "r1", "r3", "r2")
		return nil
	})
	if err != nil || !slices.Equal(got.Members, []string{"r1", "r2", "r3"}) {
		t.Fatalf("add: %+v, %v", got, err)
	}
	got, err = db.UpdateGroup(ctx, "k", func(g *store.Group) error {
		g.Members = slices.DeleteFunc(g.Members, func(m string) bool { return m == "r2" })
		return nil
	})
	if err != nil || !slices.Equal(got.Members, []string{"r1", "r3"}) {
		t.Fatalf("remove: %+v, %v", got, err)
	}

	// An error from fn is returned unchanged and nothing is written, even
	// though fn modified the group it was given.
	errLimit := errors.New("limit")
	_, err = db.UpdateGroup(ctx, "k", func(g *store.Group) error {
		g.Members = append(g.Members, "r4")
		return errLimit
	})
	if err != errLimit {
		t.Fatalf("fn error: %v, want it unchanged", err)
	}
	// Only Members may change.
	for name, mutate := range map[string]func(*store.Group){
		"key":     func(g *store.Group) { g.Key = "k2" },
		"name":    func(g *store.Group) { g.Name = "n2" },
		"sender":  func(g *store.Group) { g.SenderID = "s2" },
		"app":     func(g *store.Group) { g.App = "other" },
		"created": func(g *store.Group) { g.Created = time.Now() },
	} {
		if _, err := db.UpdateGroup(ctx, "k", func(g *store.Group) error { mutate(g); g.Members = nil; return nil }); err == nil {
			t.Errorf("changing %s succeeded", name)
		}
	}
	g, err := db.Group("k")
	if err != nil || !slices.Equal(g.Members, []string{"r1", "r3"}) {
		t.Fatalf("after refused updates: %+v, %v", g, err)
	}
	if _, err := db.GroupByName("s1", "n"); err != nil {
		t.Fatalf("name after refused updates: %v", err)
	}
}

func TestUpdateGroupDeletesWhenEmpty(t *testing.T) {
	db, _ := openTest(t, Options{})
	if err := db.CreateGroup(ctx, testGroup("k", "s1", "n", "r1", "r2")); err != nil {
		t.Fatal(err)
	}
	got, err := db.UpdateGroup(ctx, "k", func(g *store.Group) error { g.Members = g.Members[:0]; return nil })
	if err != nil || got.Key != "k" || got.Name != "n" || got.Members == nil || len(got.Members) != 0 {
		t.Fatalf("emptying update = %+v, %v", got, err)
	}
	if _, err := db.Group("k"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("store.Group after delete: %v", err)
	}
	if _, err := db.GroupByName("s1", "n"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GroupByName after delete: %v", err)
	}
	if _, err := db.UpdateGroup(ctx, "k", func(*store.Group) error { return nil }); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("update of deleted group: %v", err)
	}
	// The name is free again, and so is the key.
	if err := db.CreateGroup(ctx, testGroup("k2", "s1", "n", "r3")); err != nil {
		t.Fatalf("reuse name: %v", err)
	}
	if g, err := db.GroupByName("s1", "n"); err != nil || g.Key != "k2" {
		t.Fatalf("GroupByName after reuse: %+v, %v", g, err)
	}
	if err := db.CreateGroup(ctx, testGroup("k", "s1", "other", "r1")); err != nil {
		t.Fatalf("reuse key: %v", err)
	}
	assertGroupIndex(t, db)
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

// TestUpdateGroupConcurrent: 50 writers each add one member to the same
// group; the committer batches them, and every member must survive.
func TestUpdateGroupConcurrent(t *testing.T) {
	db, _ := openTest(t, Options{})
	if err := db.CreateGroup(ctx, testGroup("k", "s1", "n", "r0")); err != nil {
		t.Fatal(err)
	}
	const n = 50
	errLimit := errors.New("too many")
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			id := fmt.Sprintf("r%d", i+1)
			_, err := db.UpdateGroup(ctx, "k", func(g *store.Group) error {
				if len(g.Members) >= n+1 {
					return errLimit
				}
				g.Members = append(g.Members, id)
				return nil
			})
			if err != nil {
				t.Errorf("add %s: %v", id, err)
			}
		})
	}
	wg.Wait()
	g, err := db.Group("k")
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Members) != n+1 {
		t.Fatalf("%d members, want %d: %v", len(g.Members), n+1, g.Members)
	}
	for i := range n + 1 {
		if !slices.Contains(g.Members, fmt.Sprintf("r%d", i)) {
			t.Errorf("member r%d lost", i)
		}
	}
	// One more is refused by fn's limit, and nothing changes.
	if _, err := db.UpdateGroup(ctx, "k", func(g *store.Group) error {
		if len(g.Members) >= n+1 {
			return errLimit
		}
		g.Members = append(g.Members, "extra")
		return nil
	}); err != errLimit {
		t.Fatalf("over the limit: %v", err)
	}
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
	for len(db.reqs) < 1 {
		time.Sleep(time.Millisecond)
	}
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
	for len(db.reqs) < 2 {
		time.Sleep(time.Millisecond)
	}
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
