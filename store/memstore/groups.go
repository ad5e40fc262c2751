package memstore

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/ccsd/ccsd/store"
)

var errGroupIdentity = errors.New("memstore: update group: only Members may change")

// uniqueMembers drops empty and repeated ids, keeping the first of each.
func uniqueMembers(ids []string) []string {
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if id != "" && !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}

func cloneGroup(g store.Group) store.Group {
	g.Members = slices.Clone(g.Members)
	return g
}

// CreateGroup implements store.Groups.
func (db *DB) CreateGroup(ctx context.Context, g store.Group) error {
	if g.Key == "" || g.Name == "" || g.SenderID == "" {
		return fmt.Errorf("memstore: create group: key, name and sender are required")
	}
	g.Members = uniqueMembers(g.Members)
	if len(g.Members) == 0 {
		return fmt.Errorf("memstore: create group %s: no members", g.Key)
	}
	if err := db.write(ctx); err != nil {
		return err
	}
	defer db.mu.Unlock()
	nk := [2]string{g.SenderID, g.Name}
	_, nameTaken := db.groupNames[nk]
	_, keyTaken := db.groups[g.Key]
	if nameTaken || keyTaken {
		return fmt.Errorf("memstore: create group %s: %w", g.Key, store.ErrExists)
	}
	db.groups[g.Key] = g
	db.groupNames[nk] = g.Key
	return nil
}

// Group implements store.Groups.
func (db *DB) Group(key string) (store.Group, error) {
	if err := db.lock(); err != nil {
		return store.Group{}, err
	}
	defer db.mu.Unlock()
	g, ok := db.groups[key]
	if !ok {
		return store.Group{}, fmt.Errorf("memstore: group %s: %w", key, store.ErrNotFound)
	}
	return cloneGroup(g), nil
}

// GroupByName implements store.Groups.
func (db *DB) GroupByName(senderID, name string) (store.Group, error) {
	if err := db.lock(); err != nil {
		return store.Group{}, err
	}
	defer db.mu.Unlock()
	g, ok := db.groups[db.groupNames[[2]string{senderID, name}]]
	if !ok {
		return store.Group{}, fmt.Errorf("memstore: group %s/%s: %w", senderID, name, store.ErrNotFound)
	}
	return cloneGroup(g), nil
}

// UpdateGroup implements store.Groups. fn runs once, under the lock.
func (db *DB) UpdateGroup(ctx context.Context, key string, fn func(g *store.Group) error) (store.Group, error) {
	if err := db.write(ctx); err != nil {
		return store.Group{}, err
	}
	defer db.mu.Unlock()
	orig, ok := db.groups[key]
	if !ok {
		return store.Group{}, fmt.Errorf("memstore: update group %s: %w", key, store.ErrNotFound)
	}
	g := cloneGroup(orig)
	if err := fn(&g); err != nil {
		return store.Group{}, err
	}
	if g.Key != orig.Key || g.Name != orig.Name || g.SenderID != orig.SenderID ||
		g.App != orig.App || !g.Created.Equal(orig.Created) {
		return store.Group{}, errGroupIdentity
	}
	g.Members = uniqueMembers(g.Members)
	if len(g.Members) == 0 {
		delete(db.groups, key)
		delete(db.groupNames, [2]string{g.SenderID, g.Name})
		return g, nil
	}
	db.groups[key] = g
	return cloneGroup(g), nil
}
