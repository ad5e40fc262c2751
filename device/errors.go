package device

import (
	"errors"
	"fmt"
)

// Errors Run and Send return.
var (
	// ErrNotCheckedIn: the client has no identity yet; Register (or
	// Checkin) first.
	ErrNotCheckedIn = errors.New("device: not checked in (register an app first)")
	// ErrUnauthorized: ccsd refused the device's credentials (SASL
	// not-authorized). The device was deleted (it did not log in and
	// register within --unused-device-ttl of its checkin) or the server
	// has a new database: Register again to check in as a new device.
	ErrUnauthorized = errors.New("device: ccsd refused the device's credentials")
	// ErrReplaced: another session logged in with the same credentials
	// (ccsd keeps one session per device) and this one was closed with
	// <conflict/>. Run stops rather than take the session back, which
	// would make two processes evict each other for ever.
	ErrReplaced = errors.New("device: another session of this device replaced this one")
	// ErrConnectionLost: the session ended before ccsd answered an
	// upstream message, which may or may not have been stored.
	ErrConnectionLost = errors.New("device: connection lost before ccsd answered")
)

// NackError is ccsd's refusal of an upstream message (a CCS nack).
type NackError struct {
	MessageID   string
	Code        string // BAD_REGISTRATION, INVALID_JSON, SERVICE_UNAVAILABLE, DEVICE_MESSAGE_RATE_EXCEEDED, ...
	Description string
}

// Error says which message was refused, with the code.
func (e *NackError) Error() string {
	return fmt.Sprintf("device: ccsd nacked message %s: %s: %s", e.MessageID, e.Code, e.Description)
}

// Temporary reports whether sending the same message later may succeed:
// SERVICE_UNAVAILABLE (retry with backoff) and DEVICE_MESSAGE_RATE_EXCEEDED
// (slow down), as docs/device-protocol.md says.
func (e *NackError) Temporary() bool {
	return e.Code == "SERVICE_UNAVAILABLE" || e.Code == "DEVICE_MESSAGE_RATE_EXCEEDED"
}

// StanzaError is ccsd bouncing a stanza it could not read as CCS JSON (an
// XMPP message of type error): the message was not accepted.
type StanzaError struct {
	MessageID string
	Text      string
}

// Error says which message was bounced, with ccsd's text.
func (e *StanzaError) Error() string {
	return fmt.Sprintf("device: ccsd bounced message %s: %s", e.MessageID, e.Text)
}

// HTTPError is an error answer of ccsd's HTTPS endpoints.
type HTTPError struct {
	Op     string // "checkin", "register", "unregister", "subscribe", ...
	Status int
	// Code is the GCM error (register3's Error=CODE: AUTHENTICATION_FAILED,
	// INVALID_SENDER, INVALID_PARAMETERS, TOO_MANY_REGISTRATIONS,
	// SERVICE_NOT_AVAILABLE), or the "error" of a JSON answer.
	Code string
	Body string
}

// Error names the call, the status and the GCM code (or the body).
func (e *HTTPError) Error() string {
	if e.Code != "" {
		return fmt.Sprintf("device: %s: HTTP %d: %s", e.Op, e.Status, e.Code)
	}
	return fmt.Sprintf("device: %s: HTTP %d: %s", e.Op, e.Status, e.Body)
}

// StreamError is the stream error that ended a session.
type StreamError struct{ Condition string }

// Error names the stream error condition.
func (e *StreamError) Error() string { return "device: stream error from ccsd: " + e.Condition }
