// Package device is a client for the device side of ccsd, the protocol of
// docs/device-protocol.md: what a phone does to receive messages from app
// servers through ccsd and to send messages back to them.
//
// A [Client] is one device. It checks in over HTTPS (POST /checkin) to get
// its identity (an android id and a security token), registers apps
// (POST /c2dm/register3) to get one registration token per app and sender,
// and keeps both in a state file the caller chooses (mode 0600), so that a
// process started again with the same file is the same device and gets the
// messages queued for it meanwhile.
//
// [Client.Run] holds the device's XMPP session: direct TLS to ccsd's device
// port, SASL PLAIN with the android id and the token, then bind. It keeps
// the session alive (an XMPP ping every [Config.Keepalive], which also
// detects a dead peer) and reconnects with exponential backoff and jitter
// whenever the session ends, until its context is cancelled or the server
// refuses the device for good ([ErrUnauthorized], [ErrReplaced]).
//
// Delivery is at-least-once, as the protocol is: each downstream message is
// given to the [Handler], and acked to ccsd only once the handler returns
// nil. A handler error nacks it instead, which leaves it queued in ccsd: it
// comes again on the next session. A message that comes again after it was
// handled (its ack was lost with the connection, say) is dropped by its
// message_id, remembered per registration over a bounded window
// ([Config.DedupWindow]), and acked again. So within one process the
// handler sees each message once; across a restart of the process it may
// see a message again whose ack did not reach ccsd, and should be
// idempotent for that case. A deleted_messages notice (ccsd dropped queued
// messages of a registration that overflowed) reaches the handler as a
// [Message] with Deleted set.
//
// [Client.Send] sends an upstream message, to the app servers of a sender
// or to the other devices of a device group (a notification_key), and
// waits for ccsd's answer: nil once ccsd acked it (it is stored durably),
// a [*NackError] with the CCS error code otherwise.
//
// [Client.Doze] and [Client.Awake] declare the device dozing or awake
// (ccsd's control stanzas), each returning once ccsd acked it, that is
// once the state is in effect for the session: while it dozes ccsd sends
// high-priority messages at once and holds the others (normal ones at most
// its --max-doze-delay, delay_while_idle ones until Awake). A new session
// starts awake.
//
// [FromDataDir] builds a [Config] for a ccsd running on this machine from
// its data directory: the addresses from its run.json (read again before
// each connection, so a server restarted on other ports is found again)
// and the trust from its cert.pem.
//
// The package speaks the wire directly (crypto/tls and encoding/xml): the
// device side needs four XMPP steps and a handful of stanzas, and no more.
package device
