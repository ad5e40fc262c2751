package bolt

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/ccsd/ccsd/store"
)

// checkServiceAccountIndexes verifies that svckeysby and sendertokens
// list exactly the records of svckeys and tokens.
func checkServiceAccountIndexes(t *testing.T, db *DB) {
	t.Helper()
	err := db.view(func(tx *bbolt.Tx) error {
		keys, by := tx.Bucket(bucketSvcKeys), tx.Bucket(bucketSvcKeysBy)
		if nk, nb := keys.Stats().KeyN, by.Stats().KeyN; nk != nb {
			return fmt.Errorf("%d keys, %d in the sender index", nk, nb)
		}
		if err := by.ForEach(func(k, _ []byte) error {
			parts, kid, ok := splitParts(k, 1)
			v := keys.Get(kid)
			if !ok || v == nil {
				return fmt.Errorf("index entry %q names no key", k)
			}
			rec, err := decodeServiceKey(string(kid), v)
			if err != nil || rec.SenderID != parts[0] {
				return fmt.Errorf("index entry %q: key of %q, %v", k, rec.SenderID, err)
			}
			return nil
		}); err != nil {
			return err
		}
		toks, tby := tx.Bucket(bucketTokens), tx.Bucket(bucketSenderTokens)
		if nt, nb := toks.Stats().KeyN, tby.Stats().KeyN; nt != nb {
			return fmt.Errorf("%d tokens, %d in the sender index", nt, nb)
		}
		return tby.ForEach(func(k, _ []byte) error {
			parts, rest, ok := splitParts(k, 1)
			if !ok || len(rest) != 8+sha256.Size {
				return fmt.Errorf("bad index key %q", k)
			}
			v := toks.Get(rest[8:])
			if v == nil {
				return fmt.Errorf("index entry %q names no token", k)
			}
			rec, err := decodeToken(rest[8:], v)
			if err != nil || rec.SenderID != parts[0] || !bytes.Equal(k, senderTokenKey(rec.SenderID, rec.Expires, rec.Hash)) {
				return fmt.Errorf("index entry %q does not match its token %+v (%v)", k, rec, err)
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
}

func hashOf(s string) []byte { h := sha256.Sum256([]byte(s)); return h[:] }

// TestServiceAccountsDurableAndIndexed: keys and tokens survive a reopen,
// and the indexes stay exact through bounds, expiry and deletes.
func TestServiceAccountsDurableAndIndexed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ccsd.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	now := time.Now().UnixMilli()
	for _, k := range []store.ServiceKey{{ID: "k1", SenderID: "s1"}, {ID: "k2", SenderID: "s1"}, {ID: "k3", SenderID: "s2"}} {
		k.PublicKey, k.Created = []byte("der"), time.Now()
		if err := db.PutServiceKey(ctx, k, 5); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 6 { // max 4: two evicted; one expired, freed by the next put
		exp := now + int64(i)*1000
		if i == 0 {
			exp = now - 1
		}
		if _, err := db.PutAccessToken(ctx, store.AccessToken{Hash: hashOf(fmt.Sprint(i)), SenderID: "s1", KeyID: []string{"k1", "k2"}[i%2], Expires: exp}, 4, now); err != nil {
			t.Fatal(err)
		}
	}
	db.PutAccessToken(ctx, store.AccessToken{Hash: hashOf("s2"), SenderID: "s2", KeyID: "k3", Expires: now + 5000}, 4, now)
	checkServiceAccountIndexes(t, db)
	if err := db.DeleteServiceKey(ctx, "k2"); err != nil {
		t.Fatal(err)
	}
	checkServiceAccountIndexes(t, db)
	db.Close()

	if db, err = Open(path, Options{}); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	checkServiceAccountIndexes(t, db)
	live := 0
	for i := range 6 {
		if _, err := db.AccessToken(hashOf(fmt.Sprint(i)), now); err == nil {
			live++
		}
	}
	// Of the 5 live tokens, the bound of 4 kept 1..5 minus the oldest
	// live one; deleting k2 took its tokens (odd i) with it: 2 and 4 remain.
	if _, err := db.AccessToken(hashOf("2"), now); err != nil || live != 2 {
		t.Fatalf("after reopen %d tokens live of s1 (want 2), token 2: %v", live, err)
	}
	if keys, err := db.ServiceKeys("s1"); err != nil || len(keys) != 1 || keys[0].ID != "k1" {
		t.Fatalf("keys of s1 after reopen = %+v, %v", keys, err)
	}
}
