package auth

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ccsd/ccsd/store"
)

const testTokenURI = "https://127.0.0.1:8443/token"

// signJWT signs claims with key as Google's auth libraries do (RS256,
// kid in the header).
func signJWT(t testing.TB, key *rsa.PrivateKey, kid string, claims map[string]any) string {
	t.Helper()
	h, _ := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT", "kid": kid})
	c, _ := json.Marshal(claims)
	signed := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c)
	sum := sha256.Sum256([]byte(signed))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return signed + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// privateKey reads the PKCS#8 key of a service-account file.
func privateKey(t testing.TB, f ServiceAccountFile) *rsa.PrivateKey {
	t.Helper()
	b, _ := pem.Decode([]byte(f.PrivateKey))
	if b == nil || b.Type != "PRIVATE KEY" {
		t.Fatalf("private_key is not a PKCS#8 PEM block: %q", f.PrivateKey)
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return k.(*rsa.PrivateKey)
}

// grantClaims are the claims golang.org/x/oauth2/jwt writes for f.
func grantClaims(f ServiceAccountFile, now time.Time) map[string]any {
	return map[string]any{"iss": f.ClientEmail, "aud": f.TokenURI, "scope": ScopeCloudPlatform,
		"iat": now.Add(-10 * time.Second).Unix(), "exp": now.Add(-10*time.Second + time.Hour).Unix()}
}

// newAccounts returns ServiceAccounts over a real store with one sender
// and a key file for it; the clock is settable.
func newAccounts(t *testing.T) (*ServiceAccounts, ServiceAccountFile, *time.Time, *Senders) {
	t.Helper()
	db := openStore(t)
	senders := NewSenders(db)
	if _, _, err := senders.Create("proj-1"); err != nil {
		t.Fatal(err)
	}
	a := NewServiceAccounts(db, ServiceAccountLimits{MaxKeys: 2, MaxTokens: 3})
	now := time.Now()
	a.now = func() time.Time { return now }
	f, err := a.Create(context.Background(), "proj-1", testTokenURI)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	return a, f, &now, senders
}

func TestServiceAccountCreateFile(t *testing.T) {
	a, f, _, _ := newAccounts(t)
	if f.Type != "service_account" || f.ProjectID != "proj-1" || len(f.PrivateKeyID) != 40 || f.TokenURI != testTokenURI ||
		f.ClientEmail != ClientEmail("proj-1") || len(f.ClientID) != 21 || f.UniverseDomain != "googleapis.com" {
		t.Fatalf("file = %+v", f)
	}
	priv := privateKey(t, f)
	if priv.N.BitLen() != 2048 {
		t.Fatalf("key of %d bits, want 2048", priv.N.BitLen())
	}
	// The store keeps the public half, and nothing of the private key.
	k, err := a.store.ServiceKey(f.PrivateKeyID)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if string(k.PublicKey) != string(pub) || k.SenderID != "proj-1" || k.TokenURI != testTokenURI {
		t.Fatalf("stored key = %+v", k)
	}
	ctx := context.Background()
	if _, err := a.Create(ctx, "proj-1", testTokenURI); err != nil {
		t.Fatalf("second key: %v", err)
	}
	if _, err := a.Create(ctx, "proj-1", testTokenURI); !errors.Is(err, ErrTooManyKeys) {
		t.Fatalf("third key at max 2: %v, want ErrTooManyKeys", err)
	}
	if _, err := a.Create(ctx, "nobody", testTokenURI); !errors.Is(err, ErrUnknownSender) {
		t.Fatalf("unknown sender: %v", err)
	}
	for _, bad := range []string{"http://h/token", "token", ""} {
		if _, err := a.Create(ctx, "proj-1", bad); !errors.Is(err, ErrInvalidTokenURI) {
			t.Fatalf("token_uri %q: %v, want ErrInvalidTokenURI", bad, err)
		}
	}
}

func TestGrantIssuesHashedExpiringToken(t *testing.T) {
	a, f, now, _ := newAccounts(t)
	ctx := context.Background()
	tok, err := a.Grant(ctx, signJWT(t, privateKey(t, f), f.PrivateKeyID, grantClaims(f, *now)))
	if err != nil || tok.SenderID != "proj-1" || tok.ExpiresIn != time.Hour || len(tok.Token) < 40 {
		t.Fatalf("Grant = %+v, %v", tok, err)
	}
	if _, err := a.store.AccessToken([]byte(tok.Token), now.UnixMilli()); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the token is stored in clear: %v", err)
	}
	if id, err := a.AuthenticateBearer(ctx, tok.Token); err != nil || id != "proj-1" {
		t.Fatalf("AuthenticateBearer = %q, %v", id, err)
	}
	*now = now.Add(time.Hour + time.Second)
	if _, err := a.AuthenticateBearer(ctx, tok.Token); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("an hour later: %v, want ErrBadCredentials", err)
	}
	if _, err := a.AuthenticateBearer(ctx, "made-up"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("unknown token: %v", err)
	}
}

func TestGrantRefusals(t *testing.T) {
	a, f, now, _ := newAccounts(t)
	key := privateKey(t, f)
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	with := func(k string, v any) map[string]any {
		c := grantClaims(f, *now)
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	cases := []struct {
		name, jwt, code string
	}{
		{"bad signature", signJWT(t, other, f.PrivateKeyID, grantClaims(f, *now)), "invalid_grant"},
		{"unknown kid", signJWT(t, key, "0000", grantClaims(f, *now)), "invalid_grant"},
		{"wrong aud", signJWT(t, key, f.PrivateKeyID, with("aud", "https://oauth2.googleapis.com/token")), "invalid_grant"},
		{"wrong iss", signJWT(t, key, f.PrivateKeyID, with("iss", "someone@else")), "invalid_grant"},
		{"expired", signJWT(t, key, f.PrivateKeyID, with("exp", now.Add(-10*time.Minute).Unix())), "invalid_grant"},
		{"longer than an hour", signJWT(t, key, f.PrivateKeyID, with("exp", now.Add(2*time.Hour).Unix())), "invalid_grant"},
		{"iat in the future", signJWT(t, key, f.PrivateKeyID, map[string]any{"iss": f.ClientEmail, "aud": f.TokenURI,
			"scope": ScopeMessaging, "iat": now.Add(time.Hour).Unix(), "exp": now.Add(90 * time.Minute).Unix()}), "invalid_grant"},
		{"no iat", signJWT(t, key, f.PrivateKeyID, with("iat", nil)), "invalid_grant"},
		{"no scope", signJWT(t, key, f.PrivateKeyID, with("scope", nil)), "invalid_scope"},
		{"other scope", signJWT(t, key, f.PrivateKeyID, with("scope", "https://www.googleapis.com/auth/datastore")), "invalid_scope"},
		{"not a JWT", "abc.def", "invalid_grant"},
	}
	for _, c := range cases {
		_, err := a.Grant(context.Background(), c.jwt)
		var ge *GrantError
		if !errors.As(err, &ge) || ge.Code != c.code || !errors.Is(err, ErrBadCredentials) {
			t.Errorf("%s: err = %v, want a %s GrantError that is ErrBadCredentials", c.name, err, c.code)
		}
	}
	// A clock 4 minutes behind the client's is within the skew.
	early := grantClaims(f, now.Add(4*time.Minute))
	if _, err := a.Grant(context.Background(), signJWT(t, key, f.PrivateKeyID, early)); err != nil {
		t.Fatalf("iat 4 minutes ahead: %v", err)
	}
}

func TestRevokedSenderAndDeletedKey(t *testing.T) {
	a, f, now, senders := newAccounts(t)
	ctx := context.Background()
	key := privateKey(t, f)
	tok, err := a.Grant(ctx, signJWT(t, key, f.PrivateKeyID, grantClaims(f, *now)))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.DeleteKey(ctx, "other", f.PrivateKeyID); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("deleting through another sender: %v", err)
	}
	f2, _ := a.Create(ctx, "proj-1", testTokenURI)
	tok2, _ := a.Grant(ctx, signJWT(t, privateKey(t, f2), f2.PrivateKeyID, grantClaims(f2, *now)))
	if err := a.DeleteKey(ctx, "proj-1", f.PrivateKeyID); err != nil {
		t.Fatal(err)
	}
	if _, err := a.AuthenticateBearer(ctx, tok.Token); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("token of a deleted key: %v", err)
	}
	if _, err := a.Grant(ctx, signJWT(t, key, f.PrivateKeyID, grantClaims(f, *now))); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("JWT of a deleted key: %v", err)
	}
	if err := senders.Revoke("proj-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.AuthenticateBearer(ctx, tok2.Token); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("token of a revoked sender: %v", err)
	}
	if _, err := a.Grant(ctx, signJWT(t, privateKey(t, f2), f2.PrivateKeyID, grantClaims(f2, *now))); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("grant for a revoked sender: %v", err)
	}
}

func TestTokensBoundedPerSender(t *testing.T) {
	a, f, now, _ := newAccounts(t) // MaxTokens 3
	ctx := context.Background()
	var toks []string
	for i := range 4 {
		*now = now.Add(time.Second) // distinct expiries: the first expires first
		tok, err := a.Grant(ctx, signJWT(t, privateKey(t, f), f.PrivateKeyID, grantClaims(f, *now)))
		if err != nil {
			t.Fatalf("grant %d: %v", i, err)
		}
		toks = append(toks, tok.Token)
	}
	if _, err := a.AuthenticateBearer(ctx, toks[0]); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("the oldest of 4 tokens at max 3: %v, want it gone", err)
	}
	for _, tok := range toks[1:] {
		if _, err := a.AuthenticateBearer(ctx, tok); err != nil {
			t.Fatalf("a newer token: %v", err)
		}
	}
}

func TestSelfSignedJWTBearer(t *testing.T) {
	a, f, now, _ := newAccounts(t)
	ctx := context.Background()
	key := privateKey(t, f)
	base := func() map[string]any {
		return map[string]any{"iss": f.ClientEmail, "sub": f.ClientEmail, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
	}
	ok := []map[string]any{base(), base(), base()}
	ok[0]["scope"] = ScopeMessaging
	ok[1]["aud"] = FCMAudience
	ok[2]["aud"] = "https://127.0.0.1:8443/"
	for i, c := range ok {
		if id, err := a.AuthenticateBearer(ctx, signJWT(t, key, f.PrivateKeyID, c)); err != nil || id != "proj-1" {
			t.Errorf("self-signed JWT %d = %q, %v", i, id, err)
		}
	}
	noAud := base()
	if _, err := a.AuthenticateBearer(ctx, signJWT(t, key, f.PrivateKeyID, noAud)); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("no scope, no audience: %v", err)
	}
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	c := base()
	c["scope"] = ScopeMessaging
	if _, err := a.AuthenticateBearer(ctx, signJWT(t, other, f.PrivateKeyID, c)); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("forged signature: %v", err)
	}
	c["sub"] = "someone-else"
	if _, err := a.AuthenticateBearer(ctx, signJWT(t, key, f.PrivateKeyID, c)); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("sub is not the account: %v", err)
	}
}

func TestParseJWTForms(t *testing.T) {
	for _, bad := range []string{"", "a", "a.b", "a.b.c.d", strings.Repeat("a", MaxJWTBytes+1),
		"e30.e30.", "W10.e30.c2ln", "e30.W10.c2ln", "!!.e30.c2ln"} {
		if _, err := ParseJWT(bad); err == nil {
			t.Errorf("ParseJWT(%q) accepted", bad)
		}
	}
	j, err := ParseJWT("eyJhbGciOiJSUzI1NiIsImtpZCI6ImsifQ.eyJhdWQiOlsieCIsInkiXSwiaWF0IjoxfQ.c2ln")
	if err != nil || j.KeyID != "k" || j.Alg != "RS256" || !j.Aud.has("y") || j.Iat != 1 {
		t.Fatalf("ParseJWT = %+v, %v", j, err)
	}
}
