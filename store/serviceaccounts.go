package store

import (
	"context"
	"errors"
	"time"
)

// ServiceKey is the public half of a service-account key: what ccsd keeps
// of the Google-format JSON key it handed to a sender (the private key
// leaves with the file and is never stored).
type ServiceKey struct {
	// ID is the key's private_key_id, the "kid" of the JWTs it signs.
	ID       string
	SenderID string
	// PublicKey is the RSA public key, PKIX DER.
	PublicKey []byte
	// ClientEmail is the service account's client_email: the "iss" of its
	// JWTs.
	ClientEmail string
	// TokenURI is the token_uri written into the file: the "aud" a JWT
	// grant must name.
	TokenURI string
	Created  time.Time
}

// AccessToken is an OAuth2 access token issued by POST /token, stored by
// the SHA-256 digest of its value (the value itself is never stored).
type AccessToken struct {
	Hash     []byte // sha256 of the token, 32 bytes
	SenderID string
	KeyID    string // the service key whose JWT grant got it
	Expires  int64  // unix ms; dead once nowMs > Expires
}

// ServiceAccounts keeps the senders' service-account public keys and the
// access tokens issued with them (auth uses it). See the package
// documentation, "Service accounts".
type ServiceAccounts interface {
	// PutServiceKey stores k; ErrExists if its ID is taken, ErrTooManyKeys
	// if k.SenderID already holds max keys (max <= 0: no bound), checked
	// atomically with the write.
	PutServiceKey(ctx context.Context, k ServiceKey, max int) error
	// ServiceKey returns the key with the id; ErrNotFound if none.
	ServiceKey(id string) (ServiceKey, error)
	// ServiceKeys lists the sender's keys, sorted by ID.
	ServiceKeys(senderID string) ([]ServiceKey, error)
	// DeleteServiceKey deletes the key and every access token issued
	// with it, in one atomic write; ErrNotFound if none.
	DeleteServiceKey(ctx context.Context, id string) error
	// PutAccessToken stores t. In the same atomic write it deletes the
	// sender's tokens expired at nowMs and, while the sender still holds
	// max live tokens (max <= 0: no bound), the one that expires first:
	// a sender holds at most max, the newest. It returns how many live
	// tokens it deleted for the bound. ErrExists if t.Hash is taken.
	PutAccessToken(ctx context.Context, t AccessToken, max int, nowMs int64) (evicted int, err error)
	// AccessToken returns the token whose digest is hash, unless it is
	// expired at nowMs or unknown (ErrNotFound).
	AccessToken(hash []byte, nowMs int64) (AccessToken, error)
}

// ErrTooManyKeys is returned by PutServiceKey when the sender already
// holds its maximum of service-account keys.
var ErrTooManyKeys = errors.New("store: too many service-account keys for the sender")
