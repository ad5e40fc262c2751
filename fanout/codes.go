package fanout

import (
	"errors"

	"github.com/ccsd/ccsd/store"
)

// Code is a CCS nack error code, as sent in the "error" field of a nack.
type Code string

// The nack codes of the CCS protocol that ccsd emits (spec §4.3).
const (
	CodeBadAck              Code = "BAD_ACK"
	CodeBadRegistration     Code = "BAD_REGISTRATION"
	CodeDeviceUnregistered  Code = "DEVICE_UNREGISTERED"
	CodeInvalidJSON         Code = "INVALID_JSON"
	CodeServiceUnavailable  Code = "SERVICE_UNAVAILABLE"
	CodeInternalServerError Code = "INTERNAL_SERVER_ERROR"
	CodeConnectionDraining  Code = "CONNECTION_DRAINING"
	// CodeDeviceMessageRateExceeded: too many messages to (or from) one
	// registration; the peer is to slow down for it, not retry at once.
	CodeDeviceMessageRateExceeded Code = "DEVICE_MESSAGE_RATE_EXCEEDED"
)

// Nack is a refused message: a code and the human-readable
// error_description that goes with it.
type Nack struct {
	Code        Code
	Description string
	// Sub is the INVALID_JSON sub-code (MISSING_REGISTRATION, INVALID_TTL,
	// JSON_TYPE_ERROR, ...), empty for other codes.
	Sub string
}

func (n *Nack) Error() string { return string(n.Code) + ": " + n.Description }

// invalidJSON builds an INVALID_JSON nack whose description follows CCS's
// "InvalidJson : SUBCODE : text" form, so that app servers that log or match
// on it see what they saw from Google.
func invalidJSON(subcode, text string) *Nack {
	return &Nack{Code: CodeInvalidJSON, Sub: subcode, Description: "InvalidJson : " + subcode + " : " + text}
}

// HTTPError is the legacy HTTP API's name for the nack (spec §4.3, the
// HTTP <-> XMPP table), as put in a result's "error" field. It reports
// false for problems that HTTP answers with status 400 for the whole
// request instead: unparsable JSON and fields of the wrong type.
func (n *Nack) HTTPError() (string, bool) {
	switch n.Code {
	case CodeBadRegistration:
		return "InvalidRegistration", true
	case CodeDeviceUnregistered:
		return "NotRegistered", true
	case CodeServiceUnavailable, CodeConnectionDraining:
		return "Unavailable", true
	case CodeInternalServerError:
		return "InternalServerError", true
	case CodeDeviceMessageRateExceeded:
		return "DeviceMessageRateExceeded", true
	case CodeInvalidJSON:
		switch n.Sub {
		case "MISSING_REGISTRATION":
			return "MissingRegistration", true
		case "MESSAGE_TOO_BIG":
			return "MessageTooBig", true
		case "INVALID_DATA_KEY":
			return "InvalidDataKey", true
		case "INVALID_TTL":
			return "InvalidTtl", true
		case "INVALID_PACKAGE_NAME":
			return "InvalidPackageName", true
		}
	}
	return "", false
}

// storeNack maps a store error to the nack an app server sees. It is the one
// place where storage failures become protocol codes.
func storeNack(err error) *Nack {
	switch {
	case errors.Is(err, store.ErrClosed):
		return &Nack{Code: CodeServiceUnavailable, Description: "Service temporarily unavailable, retry later"}
	default:
		return &Nack{Code: CodeInternalServerError, Description: "Internal server error, retry later"}
	}
}

// registrationNack maps the outcome of resolving a "to" registration id for
// a sender: unknown ids and ids of another sender look the same (a sender
// sees only its own registrations), unregistered ones say so.
func registrationNack(to string, err error) *Nack {
	switch {
	case errors.Is(err, store.ErrUnregistered):
		return &Nack{Code: CodeDeviceUnregistered, Description: "Device unregistered"}
	case errors.Is(err, store.ErrNotFound), err == errOtherSender:
		return &Nack{Code: CodeBadRegistration, Description: "Invalid token on 'to' field: " + to}
	default:
		return storeNack(err)
	}
}

var errOtherSender = errors.New("fanout: registration belongs to another sender")
