package auth

import (
	"crypto/rand"
	"crypto/rsa"
	"strings"
	"testing"
)

// FuzzParseJWT feeds arbitrary text to the JWT parser and verifier: it
// never panics, accepts only three-segment tokens within MaxJWTBytes, and
// only the header.payload the fuzz key really signed verifies under it.
func FuzzParseJWT(f *testing.F) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		f.Fatal(err)
	}
	signed := signJWT(f, key, "k", map[string]any{"iss": "a", "aud": []string{"b", "c"}, "iat": 1, "exp": 2, "scope": ScopeMessaging})
	covered := signed[:strings.LastIndexByte(signed, '.')+1] // what the signature covers, and the dot
	f.Add("eyJhbGciOiJSUzI1NiIsImtpZCI6ImsifQ.eyJpc3MiOiJ4IiwiYXVkIjoieSJ9.c2ln")
	f.Add(signed)
	f.Fuzz(func(t *testing.T, s string) {
		j, err := ParseJWT(s)
		if err != nil {
			return
		}
		if len(s) > MaxJWTBytes || strings.Count(s, ".") != 2 {
			t.Fatalf("accepted %q", s)
		}
		if j.Verify(&key.PublicKey) && !strings.HasPrefix(s, covered) {
			t.Fatalf("%q verifies under a key that never signed it", s)
		}
	})
}
