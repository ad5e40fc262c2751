package groups_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ccsd/ccsd/groups"
	"github.com/ccsd/ccsd/store"
	"github.com/ccsd/ccsd/store/bolt"
)

var ctx = context.Background()

// openStore opens a real store in a temporary directory.
func openStore(t testing.TB) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "ccsd.db"), bolt.Options{})
	if err != nil {
		t.Fatalf("bolt.Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// register makes a live registration of app for sender on a new device and
// returns its random id.
func register(t testing.TB, db *bolt.DB, sender, app string) string {
	t.Helper()
	r, err := db.Register(store.Registration{ID: "reg-" + rand.Text(), DeviceID: "dev-" + rand.Text(), SenderID: sender, App: app})
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	return r.ID
}

func registerN(t testing.TB, db *bolt.DB, sender, app string, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = register(t, db, sender, app)
	}
	return ids
}

// members returns the stored members of key (nil if the group is gone).
func members(t testing.TB, db *bolt.DB, key string) []string {
	t.Helper()
	g, err := db.Group(key)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		t.Fatalf("Group(%s): %v", key, err)
	}
	return g.Members
}

func TestNewDefaults(t *testing.T) {
	db := openStore(t)
	if n := groups.New(db, 0).MaxMembers(); n != 10 {
		t.Errorf("New(db, 0).MaxMembers() = %d, want 10", n)
	}
	if n := groups.New(db, 20).MaxMembers(); n != 20 {
		t.Errorf("New(db, 20).MaxMembers() = %d", n)
	}
}

func TestCreateRules(t *testing.T) {
	db := openStore(t)
	reg := groups.New(db, 3)
	a := registerN(t, db, "s1", "com.a", 4)
	other := register(t, db, "s2", "com.a")
	gone := register(t, db, "s1", "com.a")
	if err := db.Unregister(ctx, gone); err != nil {
		t.Fatal(err)
	}
	b := register(t, db, "s1", "com.b")

	// Invalid ids (unknown, another sender's, unregistered, empty) are
	// dropped; repeats count once; order is kept.
	key, err := reg.Create(ctx, "s1", "user-1", []string{a[1], "nope", other, a[0], gone, "", a[1]})
	if err != nil {
		t.Fatal(err)
	}
	if got := members(t, db, key); !slices.Equal(got, []string{a[1], a[0]}) {
		t.Errorf("members = %v", got)
	}
	g, _ := db.Group(key)
	if g.App != "com.a" || g.SenderID != "s1" || g.Name != "user-1" || g.Created.IsZero() {
		t.Errorf("group = %+v", g)
	}
	if !strings.HasPrefix(key, groups.KeyPrefix) {
		t.Errorf("key %q lacks prefix %q", key, groups.KeyPrefix)
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(key, groups.KeyPrefix))
	if err != nil || len(raw) < 16 {
		t.Errorf("key %q: random part %d bytes, %v", key, len(raw), err)
	}

	for _, tc := range []struct {
		name string
		ids  []string
		want error
	}{
		{"user-1", []string{a[2]}, groups.ErrNameExists},
		{"user-2", []string{"nope", other, gone}, groups.ErrNoValidRegistrations},
		{"user-2", []string{a[0], b}, groups.ErrMixedApps},
		{"user-2", a, groups.ErrTooManyMembers}, // 4 valid, limit 3
		{"user-2", nil, groups.ErrInvalidRequest},
		{"", []string{a[0]}, groups.ErrInvalidRequest},
		{strings.Repeat("n", groups.MaxNameLen+1), []string{a[0]}, groups.ErrInvalidRequest},
	} {
		if _, err := reg.Create(ctx, "s1", tc.name, tc.ids); !errors.Is(err, tc.want) {
			t.Errorf("Create(%.20q, %v) = %v, want %v", tc.name, tc.ids, err, tc.want)
		}
	}
	if _, err := reg.Lookup(ctx, "s1", "user-2"); !errors.Is(err, groups.ErrNotFound) {
		t.Errorf("a refused create left a group: %v", err)
	}
	// The mixed-apps error names both apps.
	_, err = reg.Create(ctx, "s1", "user-2", []string{a[0], b})
	if msg := err.Error(); !strings.Contains(msg, b) || !strings.Contains(msg, "com.b") || !strings.Contains(msg, "com.a") {
		t.Errorf("mixed apps error %q does not name the apps", msg)
	}
	// Exactly at the limit is fine; another sender may reuse the name.
	if _, err := reg.Create(ctx, "s1", "user-3", a[:3]); err != nil {
		t.Errorf("create at the limit: %v", err)
	}
	if _, err := reg.Create(ctx, "s2", "user-1", []string{other}); err != nil {
		t.Errorf("same name, other sender: %v", err)
	}
}

func TestAddRules(t *testing.T) {
	db := openStore(t)
	reg := groups.New(db, 4)
	a := registerN(t, db, "s1", "com.a", 5)
	key, err := reg.Create(ctx, "s1", "user-1", a[:2])
	if err != nil {
		t.Fatal(err)
	}
	other := register(t, db, "s2", "com.a")
	otherGone := register(t, db, "s2", "com.a")
	gone := register(t, db, "s1", "com.a")
	for _, id := range []string{gone, otherGone} {
		if err := db.Unregister(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	b := register(t, db, "s1", "com.b")

	for _, tc := range []struct {
		desc      string
		sender    string
		key, name string
		ids       []string
		want      error
		wantInMsg string
	}{
		{"unknown id", "s1", key, "", []string{a[2], "nope"}, groups.ErrBadRegistration, `"nope": unknown`},
		{"another sender's id", "s1", key, "", []string{a[2], other}, groups.ErrBadRegistration, other + `": unknown`},
		{"another sender's unregistered id", "s1", key, "", []string{otherGone}, groups.ErrBadRegistration, otherGone + `": unknown`},
		{"unregistered id", "s1", key, "", []string{gone, a[2]}, groups.ErrBadRegistration, gone + `": unregistered`},
		{"other app", "s1", key, "", []string{b}, groups.ErrMixedApps, b},
		{"too many", "s1", key, "", a[2:], groups.ErrTooManyMembers, ""}, // 2 + 3 > 4
		{"too many in one request", "s1", key, "", a, groups.ErrTooManyMembers, ""},
		{"name mismatch", "s1", key, "user-2", []string{a[2]}, groups.ErrNameMismatch, ""},
		{"unknown key", "s1", "APA91bnope", "", []string{a[2]}, groups.ErrNotFound, ""},
		{"another sender's key", "s2", key, "", []string{other}, groups.ErrNotFound, ""},
		{"no key", "s1", "", "", []string{a[2]}, groups.ErrInvalidRequest, ""},
		{"no ids", "s1", key, "", nil, groups.ErrInvalidRequest, ""},
	} {
		_, err := reg.Add(ctx, tc.sender, tc.key, tc.name, tc.ids)
		if !errors.Is(err, tc.want) || !strings.Contains(fmt.Sprint(err), tc.wantInMsg) {
			t.Errorf("%s: Add = %v, want %v containing %q", tc.desc, err, tc.want, tc.wantInMsg)
		}
		if got := members(t, db, key); !slices.Equal(got, a[:2]) {
			t.Fatalf("%s: refused add changed the group: %v", tc.desc, got)
		}
	}

	// Adding members again is no change; new ones go to the end, once.
	got, err := reg.Add(ctx, "s1", key, "user-1", []string{a[1], a[2], a[2], a[0], a[3]})
	if err != nil || got != key {
		t.Fatalf("Add = %q, %v", got, err)
	}
	if m := members(t, db, key); !slices.Equal(m, a[:4]) {
		t.Errorf("members = %v, want %v", m, a[:4])
	}
	// The group is full: one more is refused even though the request also
	// names existing members.
	if _, err := reg.Add(ctx, "s1", key, "", []string{a[0], a[4]}); !errors.Is(err, groups.ErrTooManyMembers) {
		t.Errorf("add to a full group: %v", err)
	}
}

func TestRemoveRules(t *testing.T) {
	db := openStore(t)
	reg := groups.New(db, 0)
	a := registerN(t, db, "s1", "com.a", 3)
	key, err := reg.Create(ctx, "s1", "user-1", a)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		desc              string
		sender, key, name string
		want              error
	}{
		{"another sender's key", "s2", key, "", groups.ErrNotFound},
		{"unknown key", "s1", "APA91bnope", "", groups.ErrNotFound},
		{"name mismatch", "s1", key, "user-2", groups.ErrNameMismatch},
		{"no key", "s1", "", "", groups.ErrInvalidRequest},
	} {
		if _, err := reg.Remove(ctx, tc.sender, tc.key, tc.name, []string{a[0]}); !errors.Is(err, tc.want) {
			t.Errorf("%s: Remove = %v, want %v", tc.desc, err, tc.want)
		}
	}
	if _, err := reg.Remove(ctx, "s1", key, "", nil); !errors.Is(err, groups.ErrInvalidRequest) {
		t.Errorf("Remove with no ids: %v", err)
	}
	if m := members(t, db, key); !slices.Equal(m, a) {
		t.Fatalf("refused removes changed the group: %v", m)
	}

	// Ids that are not members are ignored; removing twice is no error.
	for range 2 {
		if got, err := reg.Remove(ctx, "s1", key, "user-1", []string{a[1], "not-a-member"}); err != nil || got != key {
			t.Fatalf("Remove = %q, %v", got, err)
		}
	}
	if m := members(t, db, key); !slices.Equal(m, []string{a[0], a[2]}) {
		t.Errorf("members = %v", m)
	}
	// Removing the last members deletes the group and frees the name.
	if got, err := reg.Remove(ctx, "s1", key, "", []string{a[0], a[2]}); err != nil || got != key {
		t.Fatalf("Remove last = %q, %v", got, err)
	}
	if _, err := reg.Lookup(ctx, "s1", "user-1"); !errors.Is(err, groups.ErrNotFound) {
		t.Errorf("Lookup after delete: %v", err)
	}
	if _, err := reg.Remove(ctx, "s1", key, "", []string{a[0]}); !errors.Is(err, groups.ErrNotFound) {
		t.Errorf("Remove from a deleted group: %v", err)
	}
	if _, err := reg.Add(ctx, "s1", key, "", []string{a[0]}); !errors.Is(err, groups.ErrNotFound) {
		t.Errorf("Add to a deleted group: %v", err)
	}
	key2, err := reg.Create(ctx, "s1", "user-1", a[:1])
	if err != nil || key2 == key {
		t.Errorf("create again = %q, %v (old key %q)", key2, err, key)
	}
}

func TestLookup(t *testing.T) {
	db := openStore(t)
	reg := groups.New(db, 0)
	key, err := reg.Create(ctx, "s1", "user-1", []string{register(t, db, "s1", "com.a")})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := reg.Lookup(ctx, "s1", "user-1"); err != nil || got != key {
		t.Errorf("Lookup = %q, %v; want %q", got, err, key)
	}
	if _, err := reg.Lookup(ctx, "s2", "user-1"); !errors.Is(err, groups.ErrNotFound) {
		t.Errorf("another sender's name: %v", err)
	}
	if _, err := reg.Lookup(ctx, "s1", ""); !errors.Is(err, groups.ErrInvalidRequest) {
		t.Errorf("empty name: %v", err)
	}
}

// A member unregistered after joining stays a member: the group is the app
// server's to manage.
func TestUnregisteredMemberStays(t *testing.T) {
	db := openStore(t)
	reg := groups.New(db, 0)
	a := registerN(t, db, "s1", "com.a", 2)
	key, err := reg.Create(ctx, "s1", "user-1", a)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Unregister(ctx, a[1]); err != nil {
		t.Fatal(err)
	}
	if m := members(t, db, key); !slices.Equal(m, a) {
		t.Errorf("members after unregister = %v", m)
	}
	// Adding a live one still works with the stale member in place, and the
	// app server removes the stale one itself.
	c := register(t, db, "s1", "com.a")
	if _, err := reg.Add(ctx, "s1", key, "", []string{c}); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Remove(ctx, "s1", key, "", []string{a[1]}); err != nil {
		t.Fatal(err)
	}
	if m := members(t, db, key); !slices.Equal(m, []string{a[0], c}) {
		t.Errorf("members = %v", m)
	}
}

// collidingStore makes the first CreateGroups fail as if the fresh key were
// taken.
type collidingStore struct {
	*bolt.DB
	collisions int
	keys       []string
}

func (s *collidingStore) CreateGroup(ctx context.Context, g store.Group) error {
	s.keys = append(s.keys, g.Key)
	if s.collisions > 0 {
		s.collisions--
		return fmt.Errorf("taken: %w", store.ErrExists)
	}
	return s.DB.CreateGroup(ctx, g)
}

func TestCreateRetriesKeyCollision(t *testing.T) {
	db := openStore(t)
	st := &collidingStore{DB: db, collisions: 2}
	reg := groups.New(st, 0)
	key, err := reg.Create(ctx, "s1", "user-1", []string{register(t, db, "s1", "com.a")})
	if err != nil {
		t.Fatal(err)
	}
	if len(st.keys) != 3 || st.keys[2] != key || st.keys[0] == st.keys[1] {
		t.Errorf("keys tried %v, got %q", st.keys, key)
	}
	st.collisions = 100
	if _, err := reg.Create(ctx, "s1", "user-2", []string{register(t, db, "s1", "com.a")}); err == nil || errors.Is(err, groups.ErrNameExists) {
		t.Errorf("endless collisions: %v", err)
	}
}

func TestClosedStoreIsInternal(t *testing.T) {
	db := openStore(t)
	reg := groups.New(db, 0)
	id := register(t, db, "s1", "com.a")
	key, err := reg.Create(ctx, "s1", "user-1", []string{id})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	sentinels := []error{groups.ErrNotFound, groups.ErrNoValidRegistrations, groups.ErrBadRegistration, groups.ErrInvalidRequest}
	for name, call := range map[string]func() error{
		"create": func() error { _, err := reg.Create(ctx, "s1", "user-2", []string{id}); return err },
		"add":    func() error { _, err := reg.Add(ctx, "s1", key, "", []string{id}); return err },
		"remove": func() error { _, err := reg.Remove(ctx, "s1", key, "", []string{id}); return err },
		"lookup": func() error { _, err := reg.Lookup(ctx, "s1", "user-1"); return err },
	} {
		err := call()
		if !errors.Is(err, store.ErrClosed) {
			t.Errorf("%s on a closed store: %v, want store.ErrClosed", name, err)
		}
		for _, s := range sentinels {
			if errors.Is(err, s) {
				t.Errorf("%s on a closed store looks like a refusal: %v", name, err)
			}
		}
	}
}
