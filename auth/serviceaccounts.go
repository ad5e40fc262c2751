package auth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/ccsd/ccsd/store"
)

// ServiceAccountStore is the part of the store that ServiceAccounts uses.
// Every store.Backend satisfies it.
type ServiceAccountStore interface {
	Sender(id string) (store.Sender, error)
	PutServiceKey(ctx context.Context, k store.ServiceKey, max int) error
	ServiceKey(id string) (store.ServiceKey, error)
	ServiceKeys(senderID string) ([]store.ServiceKey, error)
	DeleteServiceKey(ctx context.Context, id string) error
	PutAccessToken(ctx context.Context, t store.AccessToken, max int, nowMs int64) (int, error)
	AccessToken(hash []byte, nowMs int64) (store.AccessToken, error)
}

// Bounds of the service accounts (docs/limits.md).
const (
	// DefaultMaxKeysPerSender is Google's bound on the keys of one service
	// account.
	DefaultMaxKeysPerSender = 10
	// DefaultMaxTokensPerSender bounds the live access tokens of a sender:
	// an app server asks for one an hour per process, so a thousand is a
	// fleet; past it the token that expires first is deleted.
	DefaultMaxTokensPerSender = 1000
	// TokenLifetime is the life of an access token (expires_in), and the
	// longest exp - iat a JWT may ask for, as Google's.
	TokenLifetime = time.Hour
	// MaxClockSkew is how far a JWT's iat may lie in the future, and its
	// exp in the past, of ccsd's clock.
	MaxClockSkew = 5 * time.Minute
	// rsaBits is the size of the keys Create makes, as Google's.
	rsaBits = 2048
)

// Scopes that grant messaging: what firebase-admin asks for
// (cloud-platform) and FCM's own.
const (
	ScopeCloudPlatform = "https://www.googleapis.com/auth/cloud-platform"
	ScopeMessaging     = "https://www.googleapis.com/auth/firebase.messaging"
)

// ServiceAccountFile is a Google-format service-account JSON key, as
// firebase-admin and Google's auth libraries read it.
type ServiceAccountFile struct {
	Type           string `json:"type"`
	ProjectID      string `json:"project_id"`
	PrivateKeyID   string `json:"private_key_id"`
	PrivateKey     string `json:"private_key"`
	ClientEmail    string `json:"client_email"`
	ClientID       string `json:"client_id"`
	AuthURI        string `json:"auth_uri"`
	TokenURI       string `json:"token_uri"`
	UniverseDomain string `json:"universe_domain"`
}

// ServiceKeyInfo describes a stored key without its public key.
type ServiceKeyInfo struct {
	ID, SenderID, ClientEmail, TokenURI string
	Created                             time.Time
}

// ServiceAccountLimits bounds what one sender's service accounts hold.
type ServiceAccountLimits struct {
	MaxKeys, MaxTokens int // 0: the defaults
}

// ServiceAccounts makes service-account keys for senders, grants access
// tokens for their signed JWTs (RFC 7523) and checks Bearer tokens. It is
// safe for concurrent use.
type ServiceAccounts struct {
	store  ServiceAccountStore
	limits ServiceAccountLimits
	now    func() time.Time
}

// NewServiceAccounts returns a ServiceAccounts backed by s.
func NewServiceAccounts(s ServiceAccountStore, l ServiceAccountLimits) *ServiceAccounts {
	if l.MaxKeys <= 0 {
		l.MaxKeys = DefaultMaxKeysPerSender
	}
	if l.MaxTokens <= 0 {
		l.MaxTokens = DefaultMaxTokensPerSender
	}
	return &ServiceAccounts{store: s, limits: l, now: time.Now}
}

// ErrTooManyKeys means the sender already holds its maximum of keys.
var ErrTooManyKeys = errors.New("auth: too many service-account keys for the sender")

// ErrInvalidTokenURI means the token_uri given to Create is not an
// absolute https URL.
var ErrInvalidTokenURI = errors.New("auth: token_uri must be an https URL")

// ClientEmail is the client_email of a sender's service account: an
// address under the reserved .invalid domain, which names the sender and
// is never resolved.
func ClientEmail(senderID string) string {
	return "firebase-adminsdk@" + senderID + ".iam.ccsd.invalid"
}

// Create makes a service-account key for the live sender senderID whose
// token_uri is tokenURI (https://HOST:PORT/token), stores its public half
// and returns the file, private key included: it is returned only here.
// Errors: ErrUnknownSender, ErrSenderRevoked, ErrTooManyKeys,
// ErrInvalidTokenURI; any other is internal.
func (a *ServiceAccounts) Create(ctx context.Context, senderID, tokenURI string) (ServiceAccountFile, error) {
	u, err := url.Parse(tokenURI)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return ServiceAccountFile{}, fmt.Errorf("%w: %q", ErrInvalidTokenURI, tokenURI)
	}
	if err := a.liveSender(senderID); err != nil {
		return ServiceAccountFile{}, err
	}
	priv, err := rsa.GenerateKey(rand.Reader, rsaBits)
	if err != nil {
		return ServiceAccountFile{}, fmt.Errorf("auth: generate service-account key: %w", err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return ServiceAccountFile{}, fmt.Errorf("auth: encode service-account key: %w", err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		return ServiceAccountFile{}, fmt.Errorf("auth: encode service-account public key: %w", err)
	}
	k := store.ServiceKey{ID: randomHex(20), SenderID: senderID, PublicKey: pub, ClientEmail: ClientEmail(senderID), TokenURI: tokenURI, Created: a.now()}
	switch err := a.store.PutServiceKey(ctx, k, a.limits.MaxKeys); {
	case errors.Is(err, store.ErrTooManyKeys):
		return ServiceAccountFile{}, fmt.Errorf("%w: sender %q holds %d", ErrTooManyKeys, senderID, a.limits.MaxKeys)
	case err != nil:
		return ServiceAccountFile{}, fmt.Errorf("auth: store service-account key: %w", err)
	}
	return ServiceAccountFile{
		Type:           "service_account",
		ProjectID:      senderID,
		PrivateKeyID:   k.ID,
		PrivateKey:     string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})),
		ClientEmail:    k.ClientEmail,
		ClientID:       randomDigits(21),
		AuthURI:        strings.TrimSuffix(tokenURI, "/token") + "/o/oauth2/auth",
		TokenURI:       tokenURI,
		UniverseDomain: "googleapis.com",
	}, nil
}

// liveSender returns ErrUnknownSender or ErrSenderRevoked, or nil.
func (a *ServiceAccounts) liveSender(id string) error {
	s, err := a.store.Sender(id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("%w: %q", ErrUnknownSender, id)
	case err != nil:
		return fmt.Errorf("auth: sender %q: %w", id, err)
	case s.Revoked:
		return fmt.Errorf("%w: %q", ErrSenderRevoked, id)
	}
	return nil
}

// Keys lists the sender's keys (ErrUnknownSender for an unknown sender).
func (a *ServiceAccounts) Keys(senderID string) ([]ServiceKeyInfo, error) {
	if _, err := a.store.Sender(senderID); errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: %q", ErrUnknownSender, senderID)
	}
	keys, err := a.store.ServiceKeys(senderID)
	if err != nil {
		return nil, fmt.Errorf("auth: service keys of %q: %w", senderID, err)
	}
	out := make([]ServiceKeyInfo, 0, len(keys))
	for _, k := range keys {
		out = append(out, ServiceKeyInfo{ID: k.ID, SenderID: k.SenderID, ClientEmail: k.ClientEmail, TokenURI: k.TokenURI, Created: k.Created})
	}
	return out, nil
}

// ErrUnknownKey means the sender has no key of that id.
var ErrUnknownKey = errors.New("auth: unknown service-account key")

// DeleteKey deletes one of the sender's keys and the tokens it got: JWTs
// it signs and tokens granted for them stop working at once.
func (a *ServiceAccounts) DeleteKey(ctx context.Context, senderID, keyID string) error {
	k, err := a.store.ServiceKey(keyID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && k.SenderID != senderID) {
		return fmt.Errorf("%w: %q", ErrUnknownKey, keyID)
	}
	if err != nil {
		return fmt.Errorf("auth: service key %q: %w", keyID, err)
	}
	if err := a.store.DeleteServiceKey(ctx, keyID); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("%w: %q", ErrUnknownKey, keyID)
		}
		return fmt.Errorf("auth: delete service key %q: %w", keyID, err)
	}
	return nil
}

// randomHex returns n random bytes in hex: a private_key_id looks like
// Google's (40 hex digits for n = 20).
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
