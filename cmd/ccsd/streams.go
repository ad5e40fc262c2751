package main

import (
	"strconv"

	"github.com/ccsd/ccsd/fanout"
	"github.com/ccsd/ccsd/xmpp"
)

// stream is an XMPP connection as fanout sees it. fanout says what a
// stanza is and why a connection ends; this picks the XMPP form of each
// from xmpp's vocabulary. It costs one small value per connection, nothing
// per message.
type stream struct {
	*xmpp.Conn
	side string // "app" or "dev": xmpp numbers the connections of each server on its own
}

// ID is the connection's id for GET /admin/connections: the side and
// xmpp's number of it ("app-12", "dev-40"), the same number as the conn
// field of the connection's log lines.
func (s stream) ID() string { return s.side + "-" + strconv.FormatUint(s.Conn.ID(), 10) }

// Remote is the peer's address.
func (s stream) Remote() string { return s.Conn.RemoteAddr().String() }

// Send writes answers (ack, nack, control) with no type attribute and
// deliveries (what the peer acks) as type="normal", as CCS did.
func (s stream) Send(payload []byte, k fanout.Kind) error {
	typ := xmpp.TypeNone
	if k == fanout.Delivery {
		typ = xmpp.TypeNormal
	}
	return s.Conn.Send(payload, typ)
}

// Close ends the stream with the condition that says why.
func (s stream) Close(why fanout.Reason) { s.Conn.Close(streamCondition(why)) }

// streamCondition is the stream error condition for a reason fanout ends a
// connection.
func streamCondition(why fanout.Reason) string {
	switch why {
	case fanout.Replaced:
		return xmpp.CondConflict
	case fanout.Revoked:
		return xmpp.CondNotAuthorized
	default:
		return xmpp.CondNone
	}
}
