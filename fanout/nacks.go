package fanout

import (
	"errors"

	"github.com/ccsd/ccsd/ccs"
	"github.com/ccsd/ccsd/store"
)

// The nacks that depend on routing or storage. The codes themselves, and
// their legacy HTTP names, are package ccs's (ccs/codes.go).

// storeNack maps a store error to the nack an app server sees. It is the one
// place where storage failures become protocol codes.
func storeNack(err error) *ccs.Nack {
	switch {
	case errors.Is(err, store.ErrClosed):
		return &ccs.Nack{Code: ccs.CodeServiceUnavailable, Description: "Service temporarily unavailable, retry later"}
	default:
		return &ccs.Nack{Code: ccs.CodeInternalServerError, Description: "Internal server error, retry later"}
	}
}

// registrationNack maps the outcome of resolving a "to" registration id for
// a sender: unknown ids and ids of another sender look the same (a sender
// sees only its own registrations), unregistered ones say so.
func registrationNack(to string, err error) *ccs.Nack {
	switch {
	case errors.Is(err, store.ErrUnregistered):
		return &ccs.Nack{Code: ccs.CodeDeviceUnregistered, Description: "Device unregistered"}
	case errors.Is(err, store.ErrNotFound):
		return &ccs.Nack{Code: ccs.CodeBadRegistration, Description: "Invalid token on 'to' field: " + to}
	case err == errOtherSender:
		// The same words as for an unknown token: nothing about the other
		// sender shows; only HTTP's name differs (MismatchSenderId).
		return &ccs.Nack{Code: ccs.CodeBadRegistration, Sub: ccs.SubSenderMismatch, Description: "Invalid token on 'to' field: " + to}
	default:
		return storeNack(err)
	}
}

var errOtherSender = errors.New("fanout: registration belongs to another sender")
