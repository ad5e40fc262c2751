package bolt

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"go.etcd.io/bbolt"

	"github.com/ccsd/ccsd/store"
)

// Device groups live in two buckets of their own, created by the first
// CreateGroup (an older database without them reads as "no groups", so the
// schema version does not change):
//
//	groups      notification_key → Group
//	groupnames  part(senderID) part(name) → notification_key
//
// Both are written in the same transaction, so a name always points to an
// existing group and a group's name always points back to it.
var (
	bucketGroups     = []byte("groups")
	bucketGroupNames = []byte("groupnames")
)

// errGroupIdentity is returned by UpdateGroup when fn changed a field other
// than Members: those name the group and are fixed at creation.
var errGroupIdentity = errors.New("store: update group: only Members may change")

func groupNameKey(senderID, name string) []byte {
	return compositeKey(senderID, name)
}

// uniqueMembers returns ids without empty strings and without repeats,
// keeping the first occurrence of each, in order.
func uniqueMembers(ids []string) []string {
	out := make([]string, 0, len(ids))
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		if id == "" || seen[id] {
			continue
		}
		seen[id] = true
		out = append(out, id)
	}
	return out
}

// CreateGroup stores g. Key, Name and SenderID are required and g must have
// at least one member (a group without members does not exist); repeated
// and empty member ids are dropped. It returns ErrExists if the sender
// already has a group named g.Name, or if g.Key is taken. The group and its
// name are written in one transaction.
func (db *DB) CreateGroup(ctx context.Context, g store.Group) error {
	if g.Key == "" || g.Name == "" || g.SenderID == "" {
		return fmt.Errorf("store: create group: key, name and sender are required")
	}
	g.Members = uniqueMembers(g.Members)
	if len(g.Members) == 0 {
		return fmt.Errorf("store: create group %s: no members", g.Key)
	}
	val := encodeGroup(&g)
	nk := groupNameKey(g.SenderID, g.Name)
	err := db.update(ctx, func(tx *bbolt.Tx) error {
		if b := tx.Bucket(bucketGroupNames); b != nil && b.Get(nk) != nil {
			return clean(store.ErrExists)
		}
		if b := tx.Bucket(bucketGroups); b != nil && b.Get([]byte(g.Key)) != nil {
			return clean(store.ErrExists)
		}
		groups, err := tx.CreateBucketIfNotExists(bucketGroups)
		if err != nil {
			return err
		}
		names, err := tx.CreateBucketIfNotExists(bucketGroupNames)
		if err != nil {
			return err
		}
		if err := groups.Put([]byte(g.Key), val); err != nil {
			return err
		}
		return names.Put(nk, []byte(g.Key))
	})
	if err != nil {
		return fmt.Errorf("store: create group %s (%s/%s): %w", g.Key, g.SenderID, g.Name, err)
	}
	return nil
}

// Group returns the group with the given notification_key, or ErrNotFound.
func (db *DB) Group(key string) (store.Group, error) {
	var g store.Group
	err := db.view(func(tx *bbolt.Tx) error {
		var err error
		g, err = getGroup(tx, []byte(key))
		return err
	})
	if err != nil {
		return store.Group{}, fmt.Errorf("store: group %s: %w", key, err)
	}
	return g, nil
}

// GroupByName returns the sender's group named name, or ErrNotFound.
func (db *DB) GroupByName(senderID, name string) (store.Group, error) {
	var g store.Group
	err := db.view(func(tx *bbolt.Tx) error {
		names := tx.Bucket(bucketGroupNames)
		if names == nil {
			return store.ErrNotFound
		}
		key := names.Get(groupNameKey(senderID, name))
		if key == nil {
			return store.ErrNotFound
		}
		var err error
		g, err = getGroup(tx, key)
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("name points to missing group %q: %w", key, errCorrupt)
		}
		return err
	})
	if err != nil {
		return store.Group{}, fmt.Errorf("store: group %s/%s: %w", senderID, name, err)
	}
	return g, nil
}

// UpdateGroup runs fn on the current group inside one write transaction
// (through the group committer), so concurrent updates of one group never
// lose each other's changes. It returns ErrNotFound for an unknown key.
//
// fn may change only Members; repeated and empty ids are dropped after it
// returns. fn may run more than once (see doc.go, "Failure isolation"),
// each time on a fresh copy of the stored group, so it must depend only on
// the group it is given. If fn returns an error, nothing is written and
// UpdateGroup returns that error unchanged.
//
// If the group has no members after fn, it is deleted together with its
// name (which can then be used again), and UpdateGroup returns the group
// with empty Members and a nil error.
func (db *DB) UpdateGroup(ctx context.Context, key string, fn func(g *store.Group) error) (store.Group, error) {
	var out store.Group
	var fnErr error
	err := db.update(ctx, func(tx *bbolt.Tx) error {
		out, fnErr = store.Group{}, nil
		g, err := getGroup(tx, []byte(key))
		if err != nil {
			return clean(err)
		}
		orig := g
		g.Members = append([]string(nil), orig.Members...)
		if err := fn(&g); err != nil {
			fnErr = err
			return clean(err)
		}
		if g.Key != orig.Key || g.Name != orig.Name || g.SenderID != orig.SenderID ||
			g.App != orig.App || !g.Created.Equal(orig.Created) {
			return clean(errGroupIdentity)
		}
		g.Members = uniqueMembers(g.Members)
		groups := tx.Bucket(bucketGroups)
		if len(g.Members) == 0 {
			if err := groups.Delete([]byte(key)); err != nil {
				return err
			}
			names := tx.Bucket(bucketGroupNames)
			nk := groupNameKey(g.SenderID, g.Name)
			if cur := names.Get(nk); cur != nil && string(cur) == key {
				if err := names.Delete(nk); err != nil {
					return err
				}
			}
			g.Members = []string{}
			out = g
			return nil
		}
		if err := groups.Put([]byte(key), encodeGroup(&g)); err != nil {
			return err
		}
		out = g
		return nil
	})
	if fnErr != nil && errors.Is(err, fnErr) {
		return store.Group{}, fnErr
	}
	if err != nil {
		return store.Group{}, fmt.Errorf("store: update group %s: %w", key, err)
	}
	return out, nil
}

// getGroup reads and decodes one group; ErrNotFound if absent.
func getGroup(tx *bbolt.Tx, key []byte) (store.Group, error) {
	b := tx.Bucket(bucketGroups)
	if b == nil {
		return store.Group{}, store.ErrNotFound
	}
	v := b.Get(key)
	if v == nil {
		return store.Group{}, store.ErrNotFound
	}
	g, err := decodeGroup(v)
	if err != nil {
		return store.Group{}, fmt.Errorf("group %q: %w", key, err)
	}
	return g, nil
}

// Group: ver | Key | Name | SenderID | App | Created | uvarint(n) | n × member
func encodeGroup(g *store.Group) []byte {
	n := len(g.Key) + len(g.Name) + len(g.SenderID) + len(g.App) + 32
	for _, m := range g.Members {
		n += len(m) + 2
	}
	e := newEnc(n)
	e.str(g.Key)
	e.str(g.Name)
	e.str(g.SenderID)
	e.str(g.App)
	e.time(g.Created)
	e.b = binary.AppendUvarint(e.b, uint64(len(g.Members)))
	for _, m := range g.Members {
		e.str(m)
	}
	return e.b
}

func decodeGroup(b []byte) (store.Group, error) {
	d := newDec(b)
	var g store.Group
	g.Key = d.str()
	g.Name = d.str()
	g.SenderID = d.str()
	g.App = d.str()
	g.Created = d.time()
	n := d.uvarint()
	if d.err != nil {
		return store.Group{}, d.err
	}
	// Every member takes at least its one length byte: a count larger than
	// the bytes left is corruption, not a reason to allocate.
	if n > uint64(len(d.b)) {
		return store.Group{}, errCorrupt
	}
	g.Members = make([]string, 0, n)
	for range n {
		g.Members = append(g.Members, d.str())
	}
	return g, d.err
}
