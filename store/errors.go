package store

import "errors"

// Sentinel errors. Every error returned by the package wraps one of these
// when it is something a caller can act on; compare with errors.Is.
var (
	// ErrNotFound is returned when a sender, device, registration or queued
	// message does not exist.
	ErrNotFound = errors.New("store: not found")
	// ErrExists is returned when creating a record whose id is taken.
	ErrExists = errors.New("store: already exists")
	// ErrUnregistered is returned, together with the record, for a
	// registration that was unregistered.
	ErrUnregistered = errors.New("store: registration was unregistered")
	// ErrDuplicate is returned by Enqueue when (SenderID, MessageID) was
	// already accepted within its dedup window.
	ErrDuplicate = errors.New("store: duplicate message id")
	// ErrLocked is returned by Open when another process (or another Open in
	// this process) holds the database file.
	ErrLocked = errors.New("store: database is in use by another process")
	// ErrClosed is returned by every method called after Close.
	ErrClosed = errors.New("store: closed")
)

// ErrTooManyRegistrations is returned by RegisterLimited when the device
// already has its maximum of live registrations.
var ErrTooManyRegistrations = errors.New("store: too many registrations on the device")

// ErrTooManyTopics is returned (per registration) by Subscribe when the
// registration already holds its maximum of topics.
var ErrTooManyTopics = errors.New("store: too many topics on the registration")
