package auth

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ccsd/ccsd/store"
)

// SenderStore is the part of the store that Senders uses. Every
// store.Backend satisfies it.
type SenderStore interface {
	PutSender(s store.Sender) error
	Sender(id string) (store.Sender, error)
	Senders() ([]store.Sender, error)
	RevokeSender(id string) error
	SetGroupCopies(id string, on bool) (store.Sender, error)
}

// Sender describes a sender account without its secret.
type Sender struct {
	// ID is the sender id, the local part of the app server's JID.
	ID string
	// Created is when the sender was created.
	Created time.Time
	// Revoked reports whether the sender's API key has been revoked; a
	// revoked sender can no longer log in or get new registrations.
	Revoked bool
	// GroupCopies: the sender's app servers get a copy of each message a
	// device sends to its group (store.Sender.GroupCopies).
	GroupCopies bool
}

// APIKeyPrefix starts every API key, in the style of Google API keys, so a
// key is recognisable in a config file.
const APIKeyPrefix = "AIza"

// senderIDDigits is the length of a generated sender id, like a Google
// project number.
const senderIDDigits = 12

// maxSenderIDLen bounds a caller-chosen sender id.
const maxSenderIDLen = 64

// idAttempts bounds the retries when a random id collides with an
// existing one, which for 12 random digits or 64 random bits is rare.
const idAttempts = 16

// Senders creates, lists, revokes and authenticates sender accounts (app
// servers). It is safe for concurrent use.
type Senders struct {
	store SenderStore
	now   func() time.Time
}

// NewSenders returns a Senders backed by s.
func NewSenders(s SenderStore) *Senders {
	return &Senders{store: s, now: time.Now}
}

// ValidSenderID reports whether id may name a sender: 1 to 64 characters,
// each an ASCII letter, digit, '.', '_' or '-'. That keeps it usable as a
// JID local part and in a URL path without escaping.
func ValidSenderID(id string) bool {
	if id == "" || len(id) > maxSenderIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// Create makes a new sender and returns it with its API key. The key is
// returned only here; the store keeps its SHA-256 digest.
//
// If id is empty a random 12-digit sender id is chosen. Otherwise id must
// satisfy ValidSenderID (else ErrInvalidSenderID) and must not exist yet
// (else ErrSenderExists).
func (s *Senders) Create(id string) (Sender, string, error) {
	if id != "" && !ValidSenderID(id) {
		return Sender{}, "", fmt.Errorf("%w: %q", ErrInvalidSenderID, id)
	}
	key := APIKeyPrefix + randomString(32)
	rec := store.Sender{KeyHash: hashSecret(key), Created: s.now()}
	for attempt := 0; ; attempt++ {
		rec.ID = id
		if id == "" {
			rec.ID = randomDigits(senderIDDigits)
		}
		err := s.store.PutSender(rec)
		switch {
		case err == nil:
			return Sender{ID: rec.ID, Created: rec.Created}, key, nil
		case errors.Is(err, store.ErrExists) && id != "":
			return Sender{}, "", fmt.Errorf("%w: %q", ErrSenderExists, id)
		case errors.Is(err, store.ErrExists) && attempt < idAttempts:
			continue // random id collided; draw another
		default:
			return Sender{}, "", fmt.Errorf("auth: create sender %q: %w", rec.ID, err)
		}
	}
}

// Get returns the sender with the given id, or ErrUnknownSender.
func (s *Senders) Get(id string) (Sender, error) {
	rec, err := s.store.Sender(id)
	if errors.Is(err, store.ErrNotFound) {
		return Sender{}, fmt.Errorf("%w: %q", ErrUnknownSender, id)
	}
	if err != nil {
		return Sender{}, fmt.Errorf("auth: get sender %q: %w", id, err)
	}
	return publicSender(rec), nil
}

// List returns every sender, revoked ones included, in the store's order.
func (s *Senders) List() ([]Sender, error) {
	recs, err := s.store.Senders()
	if err != nil {
		return nil, fmt.Errorf("auth: list senders: %w", err)
	}
	out := make([]Sender, 0, len(recs))
	for _, r := range recs {
		out = append(out, publicSender(r))
	}
	return out, nil
}

// Revoke revokes the sender's API key: it can no longer log in, and no new
// registration can name it. Revoking a revoked sender is not an error. An
// unknown id gives ErrUnknownSender.
func (s *Senders) Revoke(id string) error {
	err := s.store.RevokeSender(id)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%w: %q", ErrUnknownSender, id)
	}
	if err != nil {
		return fmt.Errorf("auth: revoke sender %q: %w", id, err)
	}
	return nil
}

// SetGroupCopies turns the sender's group copies on or off and returns the
// sender as stored. An unknown id gives ErrUnknownSender.
func (s *Senders) SetGroupCopies(id string, on bool) (Sender, error) {
	rec, err := s.store.SetGroupCopies(id, on)
	if errors.Is(err, store.ErrNotFound) {
		return Sender{}, fmt.Errorf("%w: %q", ErrUnknownSender, id)
	}
	if err != nil {
		return Sender{}, fmt.Errorf("auth: set group copies of sender %q: %w", id, err)
	}
	return publicSender(rec), nil
}

// Authenticate checks an app server's SASL PLAIN credentials: user is the
// sender id (the local part of SENDER_ID@gcm.googleapis.com) and password the
// API key. It returns the sender id as the connection's identity.
//
// An unknown or revoked sender or a wrong key gives an error wrapping
// ErrBadCredentials; any other error is internal. Authenticate implements
// xmpp.Authenticator.
func (s *Senders) Authenticate(ctx context.Context, user, password string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("auth: authenticate sender: %w", err)
	}
	if user == "" {
		secretMatches(password, dummyHash)
		return "", fmt.Errorf("%w: empty sender id", ErrBadCredentials)
	}
	rec, err := s.store.Sender(user)
	if errors.Is(err, store.ErrNotFound) {
		secretMatches(password, dummyHash)
		return "", fmt.Errorf("%w: unknown sender %q", ErrBadCredentials, user)
	}
	if err != nil {
		return "", fmt.Errorf("auth: authenticate sender %q: %w", user, err)
	}
	ok := secretMatches(password, rec.KeyHash)
	if rec.Revoked {
		return "", fmt.Errorf("%w: sender %q is revoked", ErrBadCredentials, user)
	}
	if !ok {
		return "", fmt.Errorf("%w: wrong API key for sender %q", ErrBadCredentials, user)
	}
	return rec.ID, nil
}

// AuthenticateKey finds the live sender whose API key is apiKey, for HTTP
// requests that carry "Authorization: key=API_KEY" without a sender id. It
// compares against every sender (constant time each), which is cheap for the
// handful of senders one server has. If senderID is not empty the key must
// belong to that sender.
//
// No match gives an error wrapping ErrBadCredentials.
func (s *Senders) AuthenticateKey(ctx context.Context, senderID, apiKey string) (string, error) {
	if senderID != "" {
		return s.Authenticate(ctx, senderID, apiKey)
	}
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("auth: authenticate API key: %w", err)
	}
	recs, err := s.store.Senders()
	if err != nil {
		return "", fmt.Errorf("auth: authenticate API key: %w", err)
	}
	found := ""
	for _, r := range recs {
		if secretMatches(apiKey, r.KeyHash) && !r.Revoked {
			found = r.ID
		}
	}
	if found == "" {
		return "", fmt.Errorf("%w: no sender has this API key", ErrBadCredentials)
	}
	return found, nil
}

func publicSender(r store.Sender) Sender {
	return Sender{ID: r.ID, Created: r.Created, Revoked: r.Revoked, GroupCopies: r.GroupCopies}
}
