// Package topics holds the topic-subscription rules of the Instance ID API
// (what firebase-admin's SubscribeToTopic / UnsubscribeFromTopic call, and
// what an Android app's subscribeToTopic sends): topic names, the batch
// bound, the topics-per-registration bound, and whose tokens a caller may
// touch (a sender its own registrations, a device its own). It has no
// HTTP: the handler is httpapi's (iid.go). Subscriptions live in the store
// (store.Topics); sending to a topic is fanout's.
package topics

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ccsd/ccsd/ccs"
	"github.com/ccsd/ccsd/store"
)

// MaxBatch bounds the registration tokens of one batchAdd or batchRemove,
// as FCM does.
const MaxBatch = 1000

// DefaultMaxPerRegistration is FCM's documented bound on the topics one
// app instance may be subscribed to.
const DefaultMaxPerRegistration = 2000

// Errors. A token error is per token (a batch answers each in order).
var (
	// ErrInvalidTopic: the name does not match [a-zA-Z0-9-_.~%]{1,900}.
	ErrInvalidTopic = errors.New("topics: invalid topic name")
	// ErrTooManyTokens: a batch of more than MaxBatch tokens, or none.
	ErrTooManyTokens = errors.New("topics: a batch holds 1 to 1000 tokens")
	// ErrNotFound: the token is unknown, unregistered, or not the
	// caller's (another sender's, another device's): the same answer.
	ErrNotFound = errors.New("topics: token not found")
	// ErrTooManyTopics: the registration holds its maximum of topics.
	ErrTooManyTopics = errors.New("topics: too many topics for the registration")
)

// Store is what the registry needs of the store.
type Store interface {
	Registration(id string) (store.Registration, error)
	Subscribe(ctx context.Context, senderID, topic string, regIDs []string, max int) ([]error, error)
	Unsubscribe(ctx context.Context, senderID, topic string, regIDs []string) ([]error, error)
	Subscriptions(regID string) ([]store.Subscription, error)
}

// Registry applies the rules over a Store.
type Registry struct {
	st  Store
	max int
}

// New returns a registry; maxPerRegistration <= 0 takes
// DefaultMaxPerRegistration.
func New(st Store, maxPerRegistration int) *Registry {
	if maxPerRegistration <= 0 {
		maxPerRegistration = DefaultMaxPerRegistration
	}
	return &Registry{st: st, max: maxPerRegistration}
}

// Name returns the topic name of "/topics/NAME" or "NAME" (both forms are
// what SDKs send), or ErrInvalidTopic.
func Name(to string) (string, error) {
	name := strings.TrimPrefix(to, ccs.TopicPrefix)
	if !ccs.ValidTopicName(name) {
		return "", ErrInvalidTopic
	}
	return name, nil
}

// Add subscribes sender's tokens to the topic ("/topics/NAME" or NAME):
// errs[i] is nil, ErrNotFound or ErrTooManyTopics for tokens[i]; err is
// ErrInvalidTopic, ErrTooManyTokens or a store failure (nothing written).
func (r *Registry) Add(ctx context.Context, sender, topic string, tokens []string) ([]error, error) {
	return r.batch(ctx, sender, topic, tokens, true)
}

// Remove unsubscribes sender's tokens from the topic, as Add's inverse.
func (r *Registry) Remove(ctx context.Context, sender, topic string, tokens []string) ([]error, error) {
	return r.batch(ctx, sender, topic, tokens, false)
}

func (r *Registry) batch(ctx context.Context, sender, topic string, tokens []string, add bool) ([]error, error) {
	name, err := Name(topic)
	if err != nil {
		return nil, err
	}
	if len(tokens) == 0 || len(tokens) > MaxBatch {
		return nil, ErrTooManyTokens
	}
	var errs []error
	if add {
		errs, err = r.st.Subscribe(ctx, sender, name, tokens, r.max)
	} else {
		errs, err = r.st.Unsubscribe(ctx, sender, name, tokens)
	}
	if err != nil {
		return nil, fmt.Errorf("topics: %s: %w", name, err)
	}
	for i, e := range errs {
		switch {
		case errors.Is(e, store.ErrNotFound):
			errs[i] = ErrNotFound
		case errors.Is(e, store.ErrTooManyTopics):
			errs[i] = ErrTooManyTopics
		}
	}
	return errs, nil
}

// DeviceSet subscribes (add) or unsubscribes one token of the device
// deviceID itself, as an app's subscribeToTopic does: the token must be a
// live registration of that device (else ErrNotFound).
func (r *Registry) DeviceSet(ctx context.Context, deviceID, token, topic string, add bool) error {
	reg, err := r.st.Registration(token)
	switch {
	case errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrUnregistered):
		return ErrNotFound
	case err != nil:
		return fmt.Errorf("topics: registration: %w", err)
	case reg.DeviceID != deviceID:
		return ErrNotFound
	}
	errs, err := r.batch(ctx, reg.SenderID, topic, []string{token}, add)
	if err != nil {
		return err
	}
	return errs[0]
}

// Info is what GET /iid/info answers about a token.
type Info struct {
	App, Sender string
	Topics      []store.Subscription // with details only
}

// Info describes sender's token: its app and, if details, its topics.
// ErrNotFound if it is not a live registration of sender.
func (r *Registry) Info(sender, token string, details bool) (Info, error) {
	reg, err := r.st.Registration(token)
	switch {
	case errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrUnregistered):
		return Info{}, ErrNotFound
	case err != nil:
		return Info{}, fmt.Errorf("topics: registration: %w", err)
	case reg.SenderID != sender:
		return Info{}, ErrNotFound
	}
	info := Info{App: reg.App, Sender: reg.SenderID}
	if details {
		if info.Topics, err = r.st.Subscriptions(token); err != nil {
			return Info{}, fmt.Errorf("topics: subscriptions: %w", err)
		}
	}
	return info, nil
}

// AddDate is the "addDate" the Instance ID API shows: the day in UTC.
func AddDate(t time.Time) string { return t.UTC().Format("2006-01-02") }
