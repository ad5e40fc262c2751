package auth

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
)

// MaxJWTBytes bounds a JWT (an assertion or a self-signed Bearer token):
// Google's libraries write about 800 bytes.
const MaxJWTBytes = 8 << 10

// JWT is a parsed, not yet verified, RS256 JSON Web Token (RFC 7519) as
// Google's auth libraries sign them with a service-account key.
type JWT struct {
	KeyID string // header "kid": the private_key_id
	Alg   string // header "alg"
	Claims
	signed    []byte // header.payload, what the signature covers
	signature []byte
}

// Claims are the registered and Google claims ccsd reads.
type Claims struct {
	Iss   string   `json:"iss"`
	Sub   string   `json:"sub"`
	Aud   audience `json:"aud"`
	Scope string   `json:"scope"`
	Iat   int64    `json:"iat"`
	Exp   int64    `json:"exp"`
}

// audience is "aud": a string or an array of strings (RFC 7519 §4.1.3).
type audience []string

// UnmarshalJSON reads either form.
func (a *audience) UnmarshalJSON(b []byte) error {
	if bytes.HasPrefix(bytes.TrimSpace(b), []byte("[")) {
		var list []string
		if err := json.Unmarshal(b, &list); err != nil {
			return err
		}
		*a = list
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	*a = audience{s}
	return nil
}

// has reports whether the audience names v.
func (a audience) has(v string) bool {
	for _, s := range a {
		if s == v {
			return true
		}
	}
	return false
}

// errMalformedJWT is the parse failure of ParseJWT.
var errMalformedJWT = errors.New("auth: malformed JWT")

// ParseJWT splits and decodes a compact JWS (header.payload.signature,
// base64url without padding). It checks the form only: Verify checks the
// signature.
func ParseJWT(s string) (*JWT, error) {
	if len(s) > MaxJWTBytes {
		return nil, errMalformedJWT
	}
	h, rest, ok := strings.Cut(s, ".")
	p, sig, ok2 := strings.Cut(rest, ".")
	if !ok || !ok2 || strings.Contains(sig, ".") {
		return nil, errMalformedJWT
	}
	var hdr struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
	}
	j := &JWT{signed: []byte(s[:len(h)+1+len(p)])}
	if !decodeSegment(h, &hdr) || !decodeSegment(p, &j.Claims) {
		return nil, errMalformedJWT
	}
	raw, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || len(raw) == 0 {
		return nil, errMalformedJWT
	}
	j.Alg, j.KeyID, j.signature = hdr.Alg, hdr.Kid, raw
	return j, nil
}

// decodeSegment decodes one base64url segment holding a JSON object.
func decodeSegment(seg string, v any) bool {
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil || len(b) == 0 || b[0] != '{' {
		return false
	}
	return json.Unmarshal(b, v) == nil
}

// Verify checks the RS256 signature against pub.
func (j *JWT) Verify(pub *rsa.PublicKey) bool {
	if j.Alg != "RS256" {
		return false
	}
	sum := sha256.Sum256(j.signed)
	return rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], j.signature) == nil
}

// hasScope reports whether the space-separated scope claim grants
// messaging.
func (c *Claims) hasScope() bool {
	for _, s := range strings.Fields(c.Scope) {
		if s == ScopeCloudPlatform || s == ScopeMessaging {
			return true
		}
	}
	return false
}
