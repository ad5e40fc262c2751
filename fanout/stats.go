package fanout

import (
	"github.com/ccsd/ccsd/ccs"
	"github.com/ccsd/ccsd/internal/stats"
)

// Peer is the side of a connection a count is about.
type Peer uint8

const (
	// ToAppServer counts what app servers were told (over XMPP or HTTP).
	ToAppServer Peer = iota
	// ToDevice counts what devices were told.
	ToDevice
	numPeers
)

// String is the peer's name in metrics: "app_server" or "device".
func (p Peer) String() string {
	if p == ToDevice {
		return "device"
	}
	return "app_server"
}

// NackCodes are the codes Stats counts nacks by, in a fixed order; a nack
// with a code not listed (there is none today) counts as CodeOther.
var NackCodes = []ccs.Code{
	ccs.CodeBadAck, ccs.CodeBadRegistration, ccs.CodeDeviceUnregistered, ccs.CodeInvalidJSON,
	ccs.CodeServiceUnavailable, ccs.CodeInternalServerError, ccs.CodeConnectionDraining,
	ccs.CodeDeviceMessageRateExceeded, ccs.CodeTopicsMessageRateExceeded, CodeOther,
}

// CodeOther stands for a nack code missing from NackCodes.
const CodeOther ccs.Code = "OTHER"

// counters are the router's event counts: one padded atomic add per event,
// no lock and no allocation on the message path. Stats reads them.
type counters struct {
	downXMPP, downHTTP stats.Counter // downstream messages acked to the app server
	delivered          stats.Counter // device copies written to a session
	deviceAcks         stats.Counter
	upAccepted         stats.Counter // device messages acked to the device
	upDelivered        stats.Counter // upstream messages and receipts written to app servers
	upAcks             stats.Counter
	receipts           stats.Counter // delivery receipts queued
	nacks              [numPeers][]stats.Counter
	bounces            [numPeers]stats.Counter
	upRate, downRate   stats.Counter // per-registration rate refusals
	upQueueFull        stats.Counter // sender's upstream queue at its cap
	fastSent           stats.Counter // downstream copies sent on the fast path
	fastAcked          stats.Counter // ... acked before their write: never queued
	fastWritten        stats.Counter // ... queued after all (not acked in time, nacked, session closed)
	topicCopies        stats.Counter // device copies written by topic fan-outs
}

func newCounters() *counters {
	c := &counters{}
	for p := range c.nacks {
		c.nacks[p] = make([]stats.Counter, len(NackCodes))
	}
	return c
}

// nack counts one nack of code n to peer p.
func (c *counters) nack(p Peer, n *ccs.Nack) {
	i := len(NackCodes) - 1 // CodeOther
	for j, code := range NackCodes[:i] {
		if code == n.Code {
			i = j
			break
		}
	}
	c.nacks[p][i].Inc()
}

// Stats is what the router has done since New: messages by direction and
// outcome, nacks and bounces by peer, limit refusals.
type Stats struct {
	// DownstreamXMPP and DownstreamHTTP count downstream messages acked to
	// the app server (accepted: durably queued or, on the fast path,
	// delivered and acked by the device, or handled as a duplicate,
	// a dry run or a time_to_live 0 message to an offline device), by the
	// API used. A message to a group counts once.
	DownstreamXMPP, DownstreamHTTP uint64
	// Delivered counts downstream copies written to device sessions (a copy
	// sent again on a later session counts again); DeviceAcks the device
	// acks that matched a copy in flight.
	Delivered, DeviceAcks uint64
	// UpstreamAccepted counts device messages acked to the device;
	// UpstreamDelivered the upstream messages and receipts written to
	// app-server connections (redeliveries count again); UpstreamAcks the
	// app-server acks that matched one in flight.
	UpstreamAccepted, UpstreamDelivered, UpstreamAcks uint64
	// Receipts counts delivery receipts queued for app servers.
	Receipts uint64
	// Nacks[peer][i] counts the nacks of code NackCodes[i] sent to peer.
	Nacks [numPeers][]uint64
	// Bounces counts stanza errors (unparsable stanzas) sent to each peer.
	Bounces [numPeers]uint64
	// UpstreamRateRefused, DownstreamRateRefused count messages refused for
	// a registration's per-minute rate; UpstreamQueueFull those refused
	// because the sender's upstream queue was at its cap.
	UpstreamRateRefused, DownstreamRateRefused, UpstreamQueueFull uint64
	// FastSent counts downstream copies sent at once to a caught-up
	// session (they count in Delivered too); FastAcked those the device
	// acked before their write was due, which were never queued;
	// FastWritten those queued after all.
	FastSent, FastAcked, FastWritten uint64
	// TopicCopies counts the device copies topic and condition fan-outs
	// wrote to the queues; TopicJobs is how many fan-outs are unfinished
	// now (a gauge).
	TopicCopies uint64
	TopicJobs   int
}

// Stats returns the router's counts. It costs a few atomic loads and two
// small allocations: meant for a scrape, not the message path.
func (r *Router) Stats() Stats {
	c := r.n
	s := Stats{
		DownstreamXMPP: c.downXMPP.Load(), DownstreamHTTP: c.downHTTP.Load(),
		Delivered: c.delivered.Load(), DeviceAcks: c.deviceAcks.Load(),
		UpstreamAccepted: c.upAccepted.Load(), UpstreamDelivered: c.upDelivered.Load(), UpstreamAcks: c.upAcks.Load(),
		Receipts:            c.receipts.Load(),
		UpstreamRateRefused: c.upRate.Load(), DownstreamRateRefused: c.downRate.Load(), UpstreamQueueFull: c.upQueueFull.Load(),
		FastSent: c.fastSent.Load(), FastAcked: c.fastAcked.Load(), FastWritten: c.fastWritten.Load(),
		TopicCopies: c.topicCopies.Load(), TopicJobs: r.topicSlots.total(),
	}
	for p := range c.nacks {
		s.Nacks[p] = make([]uint64, len(NackCodes))
		for i := range c.nacks[p] {
			s.Nacks[p][i] = c.nacks[p][i].Load()
		}
		s.Bounces[p] = c.bounces[p].Load()
	}
	return s
}
