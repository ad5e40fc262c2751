package groups

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/ccsd/ccsd/internal/limit"
	"github.com/ccsd/ccsd/store"
)

// Store is the part of the store the registry uses. Every store.Backend
// satisfies it.
type Store interface {
	// CreateGroup stores a new group; store.ErrExists if the sender's name
	// or the key is taken.
	CreateGroup(ctx context.Context, g store.Group) error
	// Group returns the group with the key, or store.ErrNotFound.
	Group(key string) (store.Group, error)
	// GroupByName returns the sender's group with the name, or
	// store.ErrNotFound.
	GroupByName(senderID, name string) (store.Group, error)
	// UpdateGroup changes a group's members in one write transaction and
	// deletes the group when it has none left.
	UpdateGroup(ctx context.Context, key string, fn func(g *store.Group) error) (store.Group, error)
	// Registration returns a registration: store.ErrNotFound for an unknown
	// id, the record and store.ErrUnregistered for an unregistered one.
	Registration(id string) (store.Registration, error)
}

// DefaultMaxMembers is the member limit of a group when New is given none:
// 10, as in the original GCM user-notifications documentation (FCM later
// allowed 20).
const DefaultMaxMembers = 10

// MaxNameLen bounds a notification_key_name, in bytes. The GCM and FCM
// documents set no limit; ccsd sets one so a name stays a small index key.
const MaxNameLen = limit.MaxGroupNameBytes

// MaxIDLen bounds a notification_key and each registration id of a request,
// in bytes: the bound every client-chosen id has (limit.MaxIDBytes). Keys
// ccsd issues are 49 bytes.
const MaxIDLen = limit.MaxIDBytes

// KeyPrefix starts every notification_key, as in the keys GCM issued.
const KeyPrefix = "APA91b"

// keyRandomBytes is the randomness in a key after KeyPrefix: 256 bits, so
// keys cannot be guessed and never collide in practice.
const keyRandomBytes = 32

// keyAttempts bounds the retries when a fresh key is already taken.
const keyAttempts = 4

// Registry creates, changes and looks up device groups, enforcing the rules
// described in the package documentation. It is safe for concurrent use.
type Registry struct {
	st         Store
	maxMembers int
	now        func() time.Time
}

// New returns a Registry over st whose groups have at most maxMembers
// members; maxMembers <= 0 means DefaultMaxMembers.
func New(st Store, maxMembers int) *Registry {
	if maxMembers <= 0 {
		maxMembers = DefaultMaxMembers
	}
	return &Registry{st: st, maxMembers: maxMembers, now: time.Now}
}

// MaxMembers returns the member limit of a group.
func (r *Registry) MaxMembers() int { return r.maxMembers }

// Create makes a group named name for sender with the given registration
// ids and returns its new notification_key.
//
// Repeated ids count once. Ids that are not live registrations of sender
// (unknown, another sender's, unregistered) are dropped, as FCM does; if none
// is left the error is ErrNoValidRegistrations. The remaining ids must be of
// one app (else ErrMixedApps) and at most MaxMembers (else
// ErrTooManyMembers). A name the sender already uses gives ErrNameExists.
func (r *Registry) Create(ctx context.Context, sender, name string, regIDs []string) (string, error) {
	if err := checkName(name); err != nil {
		return "", err
	}
	if err := checkIDs(regIDs); err != nil {
		return "", err
	}
	var members []string
	app := ""
	for _, id := range dedup(regIDs) {
		reg, err := r.st.Registration(id)
		switch {
		case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrUnregistered):
			continue
		case err != nil:
			return "", fmt.Errorf("groups: create %q: %w", name, err)
		case reg.SenderID != sender:
			continue
		}
		if len(members) == 0 {
			app = reg.App
		} else if reg.App != app {
			return "", fmt.Errorf("%w: %q is a registration of app %q, %q of app %q", ErrMixedApps, members[0], app, id, reg.App)
		}
		members = append(members, id)
	}
	if len(members) == 0 {
		return "", ErrNoValidRegistrations
	}
	if len(members) > r.maxMembers {
		return "", fmt.Errorf("%w: %d, at most %d", ErrTooManyMembers, len(members), r.maxMembers)
	}
	g := store.Group{Name: name, SenderID: sender, App: app, Members: members, Created: r.now()}
	for attempt := 0; ; attempt++ {
		g.Key = newKey()
		err := r.st.CreateGroup(ctx, g)
		if err == nil {
			return g.Key, nil
		}
		if !errors.Is(err, store.ErrExists) {
			return "", fmt.Errorf("groups: create %q: %w", name, err)
		}
		// The name or the key is taken. Only the name is the caller's
		// fault; a key collision (or a name freed meanwhile) is retried.
		if _, err := r.st.GroupByName(sender, name); err == nil {
			return "", fmt.Errorf("%w: %q", ErrNameExists, name)
		}
		if attempt+1 >= keyAttempts {
			return "", fmt.Errorf("groups: create %q: no free key after %d attempts", name, keyAttempts)
		}
	}
}

// Add adds registration ids to sender's group key and returns the key.
// name is optional; when given it must be the group's name (else
// ErrNameMismatch), which guards against using the wrong key.
//
// Every id must be a live registration of sender and of the group's app
// (else ErrBadRegistration or ErrMixedApps, naming the id), and the group
// may not grow past MaxMembers (else ErrTooManyMembers). Ids that are
// already members are no change. On any error the group is unchanged.
func (r *Registry) Add(ctx context.Context, sender, key, name string, regIDs []string) (string, error) {
	if err := checkChange(key, name, regIDs); err != nil {
		return "", err
	}
	g, err := r.group(sender, key, name)
	if err != nil {
		return "", err
	}
	ids := dedup(regIDs)
	if len(ids) > r.maxMembers {
		// Every id is a member afterwards, so the group would be too big;
		// refuse before looking each one up.
		return "", fmt.Errorf("%w: %d, at most %d", ErrTooManyMembers, len(ids), r.maxMembers)
	}
	// Registrations are checked before the write: the store's update runs
	// inside its write transaction, where reading the store again is not
	// allowed. A registration unregistered meanwhile is the same as one
	// unregistered just after the add, which the group keeps too.
	for _, id := range ids {
		reg, err := r.st.Registration(id)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return "", fmt.Errorf("%w %q: unknown", ErrBadRegistration, id)
		case errors.Is(err, store.ErrUnregistered) && reg.SenderID == sender:
			return "", fmt.Errorf("%w %q: unregistered", ErrBadRegistration, id)
		case errors.Is(err, store.ErrUnregistered):
			return "", fmt.Errorf("%w %q: unknown", ErrBadRegistration, id)
		case err != nil:
			return "", fmt.Errorf("groups: add to %s: %w", key, err)
		case reg.SenderID != sender:
			return "", fmt.Errorf("%w %q: unknown", ErrBadRegistration, id) // another sender's: as if unknown
		case reg.App != g.App:
			return "", fmt.Errorf("%w: %q is a registration of app %q, the group's app is %q", ErrMixedApps, id, reg.App, g.App)
		}
	}
	_, err = r.st.UpdateGroup(ctx, key, func(g *store.Group) error {
		if err := r.check(g, sender, name); err != nil {
			return err
		}
		members := slices.Clone(g.Members)
		for _, id := range ids {
			if !slices.Contains(members, id) {
				members = append(members, id)
			}
		}
		if len(members) > r.maxMembers {
			return fmt.Errorf("%w: %d, at most %d", ErrTooManyMembers, len(members), r.maxMembers)
		}
		g.Members = members
		return nil
	})
	if err != nil {
		return "", r.updateError("add to", key, err)
	}
	return key, nil
}

// Remove removes registration ids from sender's group key and returns the
// key. name is optional, as for Add. Ids that are not members are ignored,
// so a repeated remove is no error. Removing the last member deletes the
// group and frees its name.
func (r *Registry) Remove(ctx context.Context, sender, key, name string, regIDs []string) (string, error) {
	if err := checkChange(key, name, regIDs); err != nil {
		return "", err
	}
	gone := make(map[string]bool, len(regIDs))
	for _, id := range regIDs {
		gone[id] = true
	}
	_, err := r.st.UpdateGroup(ctx, key, func(g *store.Group) error {
		if err := r.check(g, sender, name); err != nil {
			return err
		}
		g.Members = slices.DeleteFunc(slices.Clone(g.Members), func(m string) bool { return gone[m] })
		return nil
	})
	if err != nil {
		return "", r.updateError("remove from", key, err)
	}
	return key, nil
}

// Lookup returns the notification_key of sender's group named name, or
// ErrNotFound.
func (r *Registry) Lookup(ctx context.Context, sender, name string) (string, error) {
	if err := checkName(name); err != nil {
		return "", err
	}
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("groups: lookup %q: %w", name, err)
	}
	g, err := r.st.GroupByName(sender, name)
	if errors.Is(err, store.ErrNotFound) {
		return "", fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	if err != nil {
		return "", fmt.Errorf("groups: lookup %q: %w", name, err)
	}
	return g.Key, nil
}

// group reads sender's group key and checks the optional name.
func (r *Registry) group(sender, key, name string) (store.Group, error) {
	g, err := r.st.Group(key)
	if errors.Is(err, store.ErrNotFound) {
		return store.Group{}, fmt.Errorf("%w: %q", ErrNotFound, key)
	}
	if err != nil {
		return store.Group{}, fmt.Errorf("groups: read %s: %w", key, err)
	}
	if err := r.check(&g, sender, name); err != nil {
		return store.Group{}, err
	}
	return g, nil
}

// check refuses another sender's group (as not found) and a name that is
// not the group's.
func (r *Registry) check(g *store.Group, sender, name string) error {
	if g.SenderID != sender {
		return fmt.Errorf("%w: %q", ErrNotFound, g.Key)
	}
	if name != "" && name != g.Name {
		return fmt.Errorf("%w: %q is not the name of %q", ErrNameMismatch, name, g.Key)
	}
	return nil
}

// updateError turns an UpdateGroup error into the registry's: the
// refusals of check and the member limit pass through, a missing group is
// ErrNotFound, anything else is internal.
func (r *Registry) updateError(op, key string, err error) error {
	switch {
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrNameMismatch), errors.Is(err, ErrTooManyMembers):
		return err
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("%w: %q", ErrNotFound, key)
	}
	return fmt.Errorf("groups: %s %s: %w", op, key, err)
}

// checkName validates a notification_key_name.
func checkName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: notification_key_name is required", ErrInvalidRequest)
	case len(name) > MaxNameLen:
		return fmt.Errorf("%w: notification_key_name is longer than %d bytes", ErrInvalidRequest, MaxNameLen)
	}
	return nil
}

// checkChange validates the fields of an add or remove: a key, an optional
// name, and registration ids.
func checkChange(key, name string, regIDs []string) error {
	switch {
	case key == "":
		return fmt.Errorf("%w: notification_key is required", ErrInvalidRequest)
	case len(key) > MaxIDLen:
		return fmt.Errorf("%w: notification_key is longer than %d bytes", ErrInvalidRequest, MaxIDLen)
	case len(name) > MaxNameLen:
		return fmt.Errorf("%w: notification_key_name is longer than %d bytes", ErrInvalidRequest, MaxNameLen)
	}
	return checkIDs(regIDs)
}

// checkIDs validates the registration_ids of a request: at least one, none
// longer than MaxIDLen.
func checkIDs(regIDs []string) error {
	if len(regIDs) == 0 {
		return fmt.Errorf("%w: registration_ids is empty", ErrInvalidRequest)
	}
	for i, id := range regIDs {
		if len(id) > MaxIDLen {
			return fmt.Errorf("%w: registration_ids[%d] is longer than %d bytes", ErrInvalidRequest, i, MaxIDLen)
		}
	}
	return nil
}

// dedup returns ids with repeats removed, first occurrence kept, in order.
func dedup(ids []string) []string {
	out := make([]string, 0, len(ids))
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// newKey returns a fresh notification_key: KeyPrefix and 256 random bits,
// base64url without padding, so the key is safe in URLs and JSON.
func newKey() string {
	b := make([]byte, keyRandomBytes)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (it crashes the program instead).
	return KeyPrefix + base64.RawURLEncoding.EncodeToString(b)
}
