package store

import (
	"context"
	"errors"
)

// ErrHasRegistrations is DeleteSender's refusal, without force, of a
// sender that live registrations still name.
var ErrHasRegistrations = errors.New("store: the sender has live registrations")

// SenderDeleter deletes a sender for good ("ccsd sender delete"). It is a
// separate interface, not part of Backend, so that a backend without it
// still is one; store/bolt and store/memstore implement it, and
// storetest.RunSenderDelete pins its rules.
//
// DeleteSender removes the sender's record, its upstream queue (upstream
// messages and receipts not yet acked: nobody could log in to ack them),
// its device groups, and its service-account keys and access tokens, in
// one atomic write. A sender with live registrations is refused with ErrHasRegistrations unless force is set;
// force unregisters each one first, as Unregister does (tombstone, queued
// messages and topic subscriptions deleted), in the same write. An
// unknown id is ErrNotFound. The sender id may then be created again,
// with nothing of the old one left but tombstones.
type SenderDeleter interface {
	DeleteSender(ctx context.Context, id string, force bool) (SenderDeleted, error)
}

// SenderDeleted counts what a DeleteSender removed.
type SenderDeleted struct {
	Registrations int // live registrations unregistered (force)
	Messages      int // their queued device messages
	Upstream      int // upstream messages and receipts of the sender
	Groups        int // device groups of the sender
}
