package xmpp

// The wire forms callers choose from when they Send and Close: CCS's stanza
// types and the RFC 6120 stream error conditions ccsd uses. Callers that
// must not know XMPP (fanout) say what a stanza is and why a stream ends;
// the wiring maps that onto these names, so each form is spelt once, here.
const (
	// TypeNone writes no type attribute: CCS's ack, nack and control
	// messages, which CCS clients expect without one.
	TypeNone = ""
	// TypeNormal is the type of messages the peer is to ack: upstream
	// messages and receipts to an app server, messages to a device.
	TypeNormal = "normal"
)

// Stream error conditions for Close (RFC 6120 §4.9.3).
const (
	// CondNone ends the stream with no error: </stream:stream>.
	CondNone = ""
	// CondConflict: a newer stream of the same identity replaced this one.
	CondConflict = "conflict"
	// CondNotAuthorized: the credentials the stream logged in with are no
	// longer valid.
	CondNotAuthorized = "not-authorized"
	// CondSystemShutdown: the server is stopping.
	CondSystemShutdown = "system-shutdown"
)
