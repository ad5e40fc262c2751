package memstore

import (
	"context"
	"fmt"
	"sort"

	"github.com/ccsd/ccsd/store"
)

// serviceAccounts is the store.ServiceAccounts part of DB, under DB.mu.
type serviceAccounts struct {
	keys   map[string]store.ServiceKey
	tokens map[string]store.AccessToken // by string(hash)
}

// saTables returns the tables, made on first use; mu is held.
func (db *DB) saTables() *serviceAccounts {
	if db.sa.keys == nil {
		db.sa.keys, db.sa.tokens = map[string]store.ServiceKey{}, map[string]store.AccessToken{}
	}
	return &db.sa
}

// PutServiceKey stores k under the sender's bound.
func (db *DB) PutServiceKey(ctx context.Context, k store.ServiceKey, max int) error {
	if err := db.write(ctx); err != nil {
		return err
	}
	defer db.mu.Unlock()
	sa := db.saTables()
	if _, ok := sa.keys[k.ID]; ok {
		return fmt.Errorf("memstore: service key %s: %w", k.ID, store.ErrExists)
	}
	n := 0
	for _, o := range sa.keys {
		if o.SenderID == k.SenderID {
			n++
		}
	}
	if max > 0 && n >= max {
		return fmt.Errorf("memstore: service key of %s: %w", k.SenderID, store.ErrTooManyKeys)
	}
	k.PublicKey = append([]byte(nil), k.PublicKey...)
	sa.keys[k.ID] = k
	return nil
}

// ServiceKey returns the key with the id, or ErrNotFound.
func (db *DB) ServiceKey(id string) (store.ServiceKey, error) {
	if err := db.lock(); err != nil {
		return store.ServiceKey{}, err
	}
	defer db.mu.Unlock()
	k, ok := db.saTables().keys[id]
	if !ok {
		return store.ServiceKey{}, fmt.Errorf("memstore: service key %s: %w", id, store.ErrNotFound)
	}
	return k, nil
}

// ServiceKeys lists the sender's keys by id.
func (db *DB) ServiceKeys(senderID string) ([]store.ServiceKey, error) {
	if err := db.lock(); err != nil {
		return nil, err
	}
	defer db.mu.Unlock()
	var out []store.ServiceKey
	for _, k := range db.saTables().keys {
		if k.SenderID == senderID {
			out = append(out, k)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// DeleteServiceKey deletes the key and its tokens.
func (db *DB) DeleteServiceKey(ctx context.Context, id string) error {
	if err := db.write(ctx); err != nil {
		return err
	}
	defer db.mu.Unlock()
	sa := db.saTables()
	if _, ok := sa.keys[id]; !ok {
		return fmt.Errorf("memstore: service key %s: %w", id, store.ErrNotFound)
	}
	delete(sa.keys, id)
	for h, t := range sa.tokens {
		if t.KeyID == id {
			delete(sa.tokens, h)
		}
	}
	return nil
}

// PutAccessToken stores t, freeing the sender's expired tokens and, past
// max, those that expire first.
func (db *DB) PutAccessToken(ctx context.Context, t store.AccessToken, max int, nowMs int64) (int, error) {
	if err := db.write(ctx); err != nil {
		return 0, err
	}
	defer db.mu.Unlock()
	sa := db.saTables()
	if _, ok := sa.tokens[string(t.Hash)]; ok {
		return 0, fmt.Errorf("memstore: access token: %w", store.ErrExists)
	}
	var live []store.AccessToken
	for h, o := range sa.tokens {
		switch {
		case o.SenderID != t.SenderID:
		case nowMs > o.Expires:
			delete(sa.tokens, h)
		default:
			live = append(live, o)
		}
	}
	sort.Slice(live, func(i, j int) bool { return live[i].Expires < live[j].Expires })
	evicted := 0
	for max > 0 && len(live)-evicted >= max {
		delete(sa.tokens, string(live[evicted].Hash))
		evicted++
	}
	t.Hash = append([]byte(nil), t.Hash...)
	sa.tokens[string(t.Hash)] = t
	return evicted, nil
}

// AccessToken returns the live token whose digest is hash, or ErrNotFound.
func (db *DB) AccessToken(hash []byte, nowMs int64) (store.AccessToken, error) {
	if err := db.lock(); err != nil {
		return store.AccessToken{}, err
	}
	defer db.mu.Unlock()
	t, ok := db.saTables().tokens[string(hash)]
	if !ok || nowMs > t.Expires {
		return store.AccessToken{}, fmt.Errorf("memstore: access token: %w", store.ErrNotFound)
	}
	return t, nil
}
