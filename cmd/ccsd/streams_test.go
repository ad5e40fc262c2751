package main

import (
	"testing"

	"github.com/ccsd/ccsd/fanout"
	"github.com/ccsd/ccsd/xmpp"
)

// TestStreamCondition: each reason fanout gives for ending a connection
// becomes the stream error CCS clients and XMPP libraries react to: a
// replaced device session sees conflict (and does not reconnect in a loop
// against its own newer session), a revoked sender not-authorized, and a
// drained connection a plain end of stream.
func TestStreamCondition(t *testing.T) {
	for why, want := range map[fanout.Reason]string{
		fanout.Finished: xmpp.CondNone,
		fanout.Replaced: "conflict",
		fanout.Revoked:  "not-authorized",
	} {
		if got := streamCondition(why); got != want {
			t.Errorf("streamCondition(%d) = %q, want %q", why, got, want)
		}
	}
}
