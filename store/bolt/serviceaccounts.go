package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"

	"go.etcd.io/bbolt"

	"github.com/ccsd/ccsd/store"
)

// Service-account buckets (store.ServiceAccounts):
//
//	svckeys       kid → sender, public key, client email, token uri, created
//	svckeysby     part(sender) kid → (empty): a sender's keys, to list and count
//	tokens        sha256(token) → sender, kid, expires
//	sendertokens  part(sender) be64(expires) sha256 → (empty): a sender's
//	              tokens in expiry order, to free the expired and bound the rest
var (
	bucketSvcKeys      = []byte("svckeys")
	bucketSvcKeysBy    = []byte("svckeysby")
	bucketTokens       = []byte("tokens")
	bucketSenderTokens = []byte("sendertokens")
)

// The buckets are created by Open like every other (initSchema), also in a
// database written before they existed.
func init() {
	allBuckets = append(allBuckets, bucketSvcKeys, bucketSvcKeysBy, bucketTokens, bucketSenderTokens)
}

func encodeServiceKey(k *store.ServiceKey) []byte {
	e := newEnc(len(k.SenderID) + len(k.PublicKey) + len(k.ClientEmail) + len(k.TokenURI) + 32)
	e.str(k.SenderID)
	e.bytes(k.PublicKey)
	e.str(k.ClientEmail)
	e.str(k.TokenURI)
	e.time(k.Created)
	return e.b
}

func decodeServiceKey(id string, b []byte) (store.ServiceKey, error) {
	d := newDec(b)
	k := store.ServiceKey{ID: id, SenderID: d.str(), PublicKey: d.bytes(), ClientEmail: d.str(), TokenURI: d.str(), Created: d.time()}
	return k, d.err
}

func encodeToken(t *store.AccessToken) []byte {
	e := newEnc(len(t.SenderID) + len(t.KeyID) + 16)
	e.str(t.SenderID)
	e.str(t.KeyID)
	e.i64(t.Expires)
	return e.b
}

func decodeToken(hash, b []byte) (store.AccessToken, error) {
	d := newDec(b)
	t := store.AccessToken{Hash: bytes.Clone(hash), SenderID: d.str(), KeyID: d.str(), Expires: d.i64()}
	return t, d.err
}

// senderTokenKey is part(sender) be64(expires) hash.
func senderTokenKey(senderID string, expires int64, hash []byte) []byte {
	b := appendPart(make([]byte, 0, len(senderID)+42), senderID)
	b = binary.BigEndian.AppendUint64(b, uint64(expires))
	return append(b, hash...)
}

// PutServiceKey stores k under the sender's bound (see store.ServiceAccounts).
func (db *DB) PutServiceKey(ctx context.Context, k store.ServiceKey, max int) error {
	if k.ID == "" || k.SenderID == "" {
		return fmt.Errorf("store: put service key: empty id or sender")
	}
	val := encodeServiceKey(&k)
	byKey := append(appendPart(nil, k.SenderID), k.ID...)
	err := db.update(ctx, func(tx *bbolt.Tx) error {
		keys, by := tx.Bucket(bucketSvcKeys), tx.Bucket(bucketSvcKeysBy)
		if keys.Get([]byte(k.ID)) != nil {
			return clean(store.ErrExists)
		}
		if max > 0 && countPrefix(by, appendPart(nil, k.SenderID), max) >= max {
			return clean(store.ErrTooManyKeys)
		}
		if err := keys.Put([]byte(k.ID), val); err != nil {
			return err
		}
		return by.Put(byKey, nil)
	})
	if err != nil {
		return fmt.Errorf("store: put service key %s: %w", k.ID, err)
	}
	return nil
}

// countPrefix counts the keys of b under prefix, stopping at max.
func countPrefix(b *bbolt.Bucket, prefix []byte, max int) int {
	n := 0
	c := b.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && n < max; k, _ = c.Next() {
		n++
	}
	return n
}

// ServiceKey returns the key with the id, or ErrNotFound.
func (db *DB) ServiceKey(id string) (store.ServiceKey, error) {
	var k store.ServiceKey
	err := db.view(func(tx *bbolt.Tx) error {
		v := tx.Bucket(bucketSvcKeys).Get([]byte(id))
		if v == nil {
			return store.ErrNotFound
		}
		var err error
		k, err = decodeServiceKey(id, v)
		return err
	})
	if err != nil {
		return store.ServiceKey{}, fmt.Errorf("store: service key %s: %w", id, err)
	}
	return k, nil
}

// ServiceKeys lists the sender's keys by id.
func (db *DB) ServiceKeys(senderID string) ([]store.ServiceKey, error) {
	var out []store.ServiceKey
	prefix := appendPart(nil, senderID)
	err := db.view(func(tx *bbolt.Tx) error {
		keys := tx.Bucket(bucketSvcKeys)
		c := tx.Bucket(bucketSvcKeysBy).Cursor()
		for bk, _ := c.Seek(prefix); bk != nil && bytes.HasPrefix(bk, prefix); bk, _ = c.Next() {
			id := string(bk[len(prefix):])
			v := keys.Get([]byte(id))
			if v == nil {
				return fmt.Errorf("index names missing key %q: %w", id, errCorrupt)
			}
			k, err := decodeServiceKey(id, v)
			if err != nil {
				return fmt.Errorf("key %q: %w", id, err)
			}
			out = append(out, k)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: service keys of %s: %w", senderID, err)
	}
	return out, nil
}

// DeleteServiceKey deletes the key and the tokens issued with it.
func (db *DB) DeleteServiceKey(ctx context.Context, id string) error {
	err := db.update(ctx, func(tx *bbolt.Tx) error {
		keys := tx.Bucket(bucketSvcKeys)
		v := keys.Get([]byte(id))
		if v == nil {
			return clean(store.ErrNotFound)
		}
		k, err := decodeServiceKey(id, v)
		if err != nil {
			return clean(err)
		}
		if err := deleteTokens(tx, k.SenderID, func(t store.AccessToken) bool { return t.KeyID == id }); err != nil {
			return err
		}
		if err := tx.Bucket(bucketSvcKeysBy).Delete(append(appendPart(nil, k.SenderID), id...)); err != nil {
			return err
		}
		return keys.Delete([]byte(id))
	})
	if err != nil {
		return fmt.Errorf("store: delete service key %s: %w", id, err)
	}
	return nil
}

// deleteServiceAccountsOf deletes every key of the sender and every token
// issued with them: a sender deleted and created again under the same id
// must not be signed in by the old one's credentials files.
func deleteServiceAccountsOf(tx *bbolt.Tx, senderID string) error {
	if err := deleteTokens(tx, senderID, func(store.AccessToken) bool { return true }); err != nil {
		return err
	}
	keys, by := tx.Bucket(bucketSvcKeys), tx.Bucket(bucketSvcKeysBy)
	prefix := appendPart(nil, senderID)
	var gone [][]byte
	c := by.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		gone = append(gone, bytes.Clone(k))
	}
	for _, k := range gone {
		if err := keys.Delete(k[len(prefix):]); err != nil {
			return err
		}
		if err := by.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// deleteTokens deletes the sender's tokens for which drop is true. A
// sender's tokens are bounded (PutAccessToken), so this is a bounded scan.
func deleteTokens(tx *bbolt.Tx, senderID string, drop func(store.AccessToken) bool) error {
	toks, by := tx.Bucket(bucketTokens), tx.Bucket(bucketSenderTokens)
	prefix := appendPart(nil, senderID)
	var gone [][]byte
	c := by.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		hash := k[len(prefix)+8:]
		v := toks.Get(hash)
		if v == nil {
			return fmt.Errorf("token index names a missing token: %w", errCorrupt)
		}
		t, err := decodeToken(hash, v)
		if err != nil {
			return err
		}
		if drop(t) {
			gone = append(gone, bytes.Clone(k))
		}
	}
	for _, k := range gone {
		if err := toks.Delete(k[len(prefix)+8:]); err != nil {
			return err
		}
		if err := by.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// PutAccessToken stores t, freeing the sender's expired tokens and, past
// max, the ones that expire first (see store.ServiceAccounts).
func (db *DB) PutAccessToken(ctx context.Context, t store.AccessToken, max int, nowMs int64) (int, error) {
	if len(t.Hash) == 0 || t.SenderID == "" {
		return 0, fmt.Errorf("store: put access token: empty hash or sender")
	}
	val := encodeToken(&t)
	var evicted int
	err := db.update(ctx, func(tx *bbolt.Tx) error {
		evicted = 0
		toks, by := tx.Bucket(bucketTokens), tx.Bucket(bucketSenderTokens)
		if toks.Get(t.Hash) != nil {
			return clean(store.ErrExists)
		}
		var err error
		if evicted, err = boundTokens(by, toks, t.SenderID, max, nowMs); err != nil {
			return err
		}
		if err := toks.Put(t.Hash, val); err != nil {
			return err
		}
		return by.Put(senderTokenKey(t.SenderID, t.Expires, t.Hash), nil)
	})
	if err != nil {
		return 0, fmt.Errorf("store: put access token of %s: %w", t.SenderID, err)
	}
	return evicted, nil
}

// boundTokens deletes, in expiry order, the sender's tokens expired at
// nowMs and then live ones while max or more remain (max <= 0: none), and
// returns how many live ones went.
func boundTokens(by, toks *bbolt.Bucket, senderID string, max int, nowMs int64) (int, error) {
	prefix := appendPart(nil, senderID)
	total := 0
	if max > 0 {
		total = countPrefix(by, prefix, 1<<30)
	}
	var gone [][]byte
	evicted := 0
	c := by.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		expires := int64(binary.BigEndian.Uint64(k[len(prefix):]))
		live := expires >= nowMs
		if live && (max <= 0 || total-len(gone) < max) {
			break // expiry order: every later token is live too
		}
		if live {
			evicted++
		}
		gone = append(gone, bytes.Clone(k))
	}
	for _, k := range gone {
		if err := toks.Delete(k[len(prefix)+8:]); err != nil {
			return 0, err
		}
		if err := by.Delete(k); err != nil {
			return 0, err
		}
	}
	return evicted, nil
}

// AccessToken returns the live token whose digest is hash, or ErrNotFound.
func (db *DB) AccessToken(hash []byte, nowMs int64) (store.AccessToken, error) {
	var t store.AccessToken
	err := db.view(func(tx *bbolt.Tx) error {
		v := tx.Bucket(bucketTokens).Get(hash)
		if v == nil {
			return store.ErrNotFound
		}
		var err error
		if t, err = decodeToken(hash, v); err != nil {
			return err
		}
		if nowMs > t.Expires {
			return store.ErrNotFound
		}
		return nil
	})
	if err != nil {
		return store.AccessToken{}, fmt.Errorf("store: access token: %w", err)
	}
	return t, nil
}
