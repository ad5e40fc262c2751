package storetest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ccsd/ccsd/store"
)

var groupTests = []test{
	{"GroupsEmptyDatabase", func(t *testing.T, x *env) {
		db, ctx := x.db, x.ctx
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
	}},
	{"GroupCreateAndGet", func(t *testing.T, x *env) {
		db, ctx := x.db, x.ctx
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
	}},
	{"UpdateGroup", func(t *testing.T, x *env) {
		db, ctx := x.db, x.ctx
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
	}},
	{"UpdateGroupDeletesWhenEmpty", func(t *testing.T, x *env) {
		db, ctx := x.db, x.ctx
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
	}},
	// UpdateGroupConcurrent: 50 writers each add one member to the same
	// group; the committer batches them, and every member must survive.
	{"UpdateGroupConcurrent", func(t *testing.T, x *env) {
		db, ctx := x.db, x.ctx
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
	}},
}

func testGroup(key, sender, name string, members ...string) store.Group {
	return store.Group{Key: key, Name: name, SenderID: sender, App: "com.example", Members: members, Created: time.Unix(1700000000, 42)}
}

func sameGroup(a, b store.Group) bool {
	return a.Key == b.Key && a.Name == b.Name && a.SenderID == b.SenderID && a.App == b.App &&
		a.Created.Equal(b.Created) && slices.Equal(a.Members, b.Members)
}
