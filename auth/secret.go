package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"math/big"
	"strconv"
)

// randomString returns n bytes from crypto/rand encoded as unpadded
// base64url, which is safe in URLs, form values, JIDs and SASL PLAIN.
func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (it crashes the program instead).
	return base64.RawURLEncoding.EncodeToString(b)
}

// randomDigits returns a random decimal number of exactly n digits with no
// leading zero.
func randomDigits(n int) string {
	lo := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(n-1)), nil) // 10^(n-1)
	span := new(big.Int).Sub(new(big.Int).Mul(lo, big.NewInt(10)), lo)  // 9 * 10^(n-1)
	v, _ := rand.Int(rand.Reader, span)                                 // cannot fail with crypto/rand.Reader
	return v.Add(v, lo).String()
}

// randomUint64 returns a random non-zero uint64 as a decimal string.
func randomUint64() string {
	var b [8]byte
	for {
		_, _ = rand.Read(b[:])
		if v := binary.BigEndian.Uint64(b[:]); v != 0 {
			return strconv.FormatUint(v, 10)
		}
	}
}

// hashSecret returns the SHA-256 digest of a secret. Secrets issued here
// carry at least 128 bits of entropy, so a fast unsalted hash is enough: no
// precomputed table or offline search can reach them, and authentication
// stays cheap on every connection and request.
func hashSecret(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// secretMatches reports whether secret hashes to want, in time that does not
// depend on where the digests differ.
func secretMatches(secret string, want []byte) bool {
	got := hashSecret(secret)
	return len(want) == len(got) && subtle.ConstantTimeCompare(got, want) == 1
}

// dummyHash is compared against when the identity is unknown, so that an
// unknown identity costs the same as a wrong secret.
var dummyHash = hashSecret("ccsd: no such identity")
