package auth

import "errors"

// Sentinel errors. Callers branch on them with errors.Is; every error
// returned by this package that is not one of them is an internal failure
// (for example, the store is closed) and maps to "service unavailable".
var (
	// ErrBadCredentials means the identity is unknown, revoked, or the
	// secret does not match. Callers must not tell these cases apart to the
	// client.
	ErrBadCredentials = errors.New("auth: bad credentials")

	// ErrUnknownSender means no sender has the given id.
	ErrUnknownSender = errors.New("auth: unknown sender")

	// ErrSenderRevoked means the sender exists but has been revoked.
	ErrSenderRevoked = errors.New("auth: sender revoked")

	// ErrSenderExists means a sender with the requested id already exists.
	ErrSenderExists = errors.New("auth: sender already exists")

	// ErrInvalidSenderID means a requested sender id is not acceptable
	// (see ValidSenderID).
	ErrInvalidSenderID = errors.New("auth: invalid sender id")

	// ErrUnknownDevice means no device has the given android id.
	ErrUnknownDevice = errors.New("auth: unknown device")

	// ErrInvalidParameters means a required parameter is missing or
	// malformed (for example an empty app category).
	ErrInvalidParameters = errors.New("auth: invalid parameters")
)
