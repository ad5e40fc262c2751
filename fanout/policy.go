package fanout

// Session policy, in one place: how many sessions one identity may hold and
// what happens past that. The xmpp server enforces the per-identity count it
// is configured with (cmd/ccsd passes MaxAppServerConns); the device rule is
// applied by Presence.
const (
	// MaxAppServerConns is how many XMPP connections one sender may hold
	// at once, CCS's number. The next login is refused with the stream
	// error policy-violation.
	MaxAppServerConns = 1000

	// MaxDeviceSessions is how many sessions one device may hold: one,
	// since a session carries every app's messages. A new login is never
	// refused for it: it replaces the older session, which ends with
	// Replaced (stream error conflict). A phone that lost its network
	// reconnects before the server notices the old socket is dead, and
	// the new session must win.
	MaxDeviceSessions = 1
)
