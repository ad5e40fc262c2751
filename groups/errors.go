package groups

import (
	"context"
	"errors"

	"github.com/ccsd/ccsd/store"
)

// Sentinel errors. Every refusal of the Registry wraps one of them, with the
// offending value in the message; callers branch with errors.Is. Any other
// error is an internal failure; Temporary tells the retryable ones (such as
// a store that is closing). The HTTP handler of package httpapi maps them to
// statuses in one place, writeNotificationError in notification.go.
var (
	// ErrInvalidRequest means a required field is missing or malformed:
	// an empty name or key, an empty registration id list, a name that is
	// too long, or (over HTTP) bad JSON or an unknown operation.
	ErrInvalidRequest = errors.New("groups: invalid request")

	// ErrNameExists means the sender already has a group with this
	// notification_key_name.
	ErrNameExists = errors.New("groups: notification_key_name already exists")

	// ErrNotFound means no group of this sender has the key or name. A group
	// of another sender gives the same error: a sender sees only its own.
	ErrNotFound = errors.New("groups: notification_key not found")

	// ErrNameMismatch means an add or remove named both a key and a name,
	// and the key's group has another name.
	ErrNameMismatch = errors.New("groups: notification_key_name does not match notification_key")

	// ErrTooManyMembers means the group would have more members than the
	// registry's limit.
	ErrTooManyMembers = errors.New("groups: too many registration ids")

	// ErrNoValidRegistrations means a create named no registration id that
	// is a live registration of the sender.
	ErrNoValidRegistrations = errors.New("groups: no valid registration ids")

	// ErrBadRegistration means an add named a registration id that is not a
	// live registration of the sender (unknown, another sender's, or
	// unregistered).
	ErrBadRegistration = errors.New("groups: invalid registration id")

	// ErrMixedApps means the registration ids belong to different apps: all
	// members of a group are registrations of one app.
	ErrMixedApps = errors.New("groups: registration ids of different apps")
)

// Temporary reports whether err is a transient failure rather than a
// refusal: the request was cancelled or timed out, or the store is shutting
// down. The caller may retry later; the client is not at fault.
func Temporary(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, store.ErrClosed)
}
