package storetest

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"testing"

	"github.com/ccsd/ccsd/store"
)

// tokenHash is the digest a token named s is stored under.
func tokenHash(s string) []byte { h := sha256.Sum256([]byte(s)); return h[:] }

func svcKey(id, sender string) store.ServiceKey {
	return store.ServiceKey{ID: id, SenderID: sender, PublicKey: []byte("der-" + id), ClientEmail: "sa@" + sender, TokenURI: "https://h/token", Created: Epoch}
}

var serviceAccountTests = []test{
	{"ServiceKeysBoundedPerSender", func(t *testing.T, x *env) {
		db, ctx := x.db, x.ctx
		for _, id := range []string{"k2", "k1"} {
			if err := db.PutServiceKey(ctx, svcKey(id, "s1"), 2); err != nil {
				t.Fatalf("PutServiceKey(%s): %v", id, err)
			}
		}
		if err := db.PutServiceKey(ctx, svcKey("k3", "s1"), 2); !errors.Is(err, store.ErrTooManyKeys) {
			t.Fatalf("third key of s1 at max 2: %v, want ErrTooManyKeys", err)
		}
		if err := db.PutServiceKey(ctx, svcKey("k1", "s2"), 2); !errors.Is(err, store.ErrExists) {
			t.Fatalf("a taken key id: %v, want ErrExists", err)
		}
		if err := db.PutServiceKey(ctx, svcKey("k9", "s2"), 2); err != nil {
			t.Fatalf("another sender's key: %v", err)
		}
		keys, err := db.ServiceKeys("s1")
		if err != nil || len(keys) != 2 || keys[0].ID != "k1" || keys[1].ID != "k2" {
			t.Fatalf("ServiceKeys(s1) = %+v, %v; want k1, k2", keys, err)
		}
		k, err := db.ServiceKey("k2")
		if err != nil || k.SenderID != "s1" || !bytes.Equal(k.PublicKey, []byte("der-k2")) || k.ClientEmail != "sa@s1" ||
			k.TokenURI != "https://h/token" || !k.Created.Equal(Epoch) {
			t.Fatalf("ServiceKey(k2) = %+v, %v", k, err)
		}
		if _, err := db.ServiceKey("nope"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown key: %v", err)
		}
	}},
	{"AccessTokenExpiresAtCallersClock", func(t *testing.T, x *env) {
		db, ctx := x.db, x.ctx
		now := x.clk.ms()
		tok := store.AccessToken{Hash: tokenHash("a"), SenderID: "s1", KeyID: "k1", Expires: now + 1000}
		if _, err := db.PutAccessToken(ctx, tok, 0, now); err != nil {
			t.Fatal(err)
		}
		got, err := db.AccessToken(tokenHash("a"), now+1000)
		if err != nil || got.SenderID != "s1" || got.KeyID != "k1" || got.Expires != now+1000 {
			t.Fatalf("AccessToken at its expiry = %+v, %v", got, err)
		}
		if _, err := db.AccessToken(tokenHash("a"), now+1001); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("AccessToken past its expiry: %v, want ErrNotFound", err)
		}
		if _, err := db.AccessToken(tokenHash("b"), now); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown token: %v", err)
		}
		if _, err := db.PutAccessToken(ctx, tok, 0, now); !errors.Is(err, store.ErrExists) {
			t.Fatalf("the same hash twice: %v, want ErrExists", err)
		}
	}},
	{"AccessTokensBoundedPerSender", func(t *testing.T, x *env) {
		db, ctx := x.db, x.ctx
		now := x.clk.ms()
		put := func(name, sender string, expires int64) int {
			t.Helper()
			n, err := db.PutAccessToken(ctx, store.AccessToken{Hash: tokenHash(name), SenderID: sender, KeyID: "k", Expires: expires}, 2, now)
			if err != nil {
				t.Fatalf("PutAccessToken(%s): %v", name, err)
			}
			return n
		}
		put("old", "s1", now-1) // already expired: freed by the next put, not counted
		put("b", "s1", now+300)
		put("other", "s2", now+100)
		if n := put("a", "s1", now+200); n != 0 {
			t.Fatalf("second live token at max 2 evicted %d", n)
		}
		if n := put("c", "s1", now+400); n != 1 {
			t.Fatalf("third live token at max 2 evicted %d, want 1", n)
		}
		for name, live := range map[string]bool{"old": false, "a": false, "b": true, "c": true, "other": true} {
			_, err := db.AccessToken(tokenHash(name), now-10)
			if live != (err == nil) {
				t.Errorf("token %s: err = %v, want live %v (a sender keeps its max newest-expiring tokens)", name, err, live)
			}
		}
	}},
	{"DeleteServiceKeyDeletesItsTokens", func(t *testing.T, x *env) {
		db, ctx := x.db, x.ctx
		now := x.clk.ms()
		db.PutServiceKey(ctx, svcKey("k1", "s1"), 0)
		db.PutServiceKey(ctx, svcKey("k2", "s1"), 0)
		db.PutAccessToken(ctx, store.AccessToken{Hash: tokenHash("t1"), SenderID: "s1", KeyID: "k1", Expires: now + 10}, 0, now)
		db.PutAccessToken(ctx, store.AccessToken{Hash: tokenHash("t2"), SenderID: "s1", KeyID: "k2", Expires: now + 10}, 0, now)
		if err := db.DeleteServiceKey(ctx, "k1"); err != nil {
			t.Fatal(err)
		}
		if err := db.DeleteServiceKey(ctx, "k1"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("second delete: %v, want ErrNotFound", err)
		}
		if _, err := db.ServiceKey("k1"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("deleted key still read: %v", err)
		}
		if _, err := db.AccessToken(tokenHash("t1"), now); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("a token of the deleted key still live: %v", err)
		}
		if _, err := db.AccessToken(tokenHash("t2"), now); err != nil {
			t.Fatalf("another key's token: %v", err)
		}
		if keys, _ := db.ServiceKeys("s1"); len(keys) != 1 || keys[0].ID != "k2" {
			t.Fatalf("ServiceKeys after delete = %+v", keys)
		}
	}},
}
