package fanout

import (
	"time"

	"github.com/ccsd/ccsd/store"
)

// Lanes: priority and the device's doze state (issue 9, items 2 and 3;
// docs/device-protocol.md, "Priority and doze").
//
// A session's normal walk reads its queue in Seq order after d.last. The
// urgent lane (priority high, not delay_while_idle: store.LaneUrgent) is
// read first, from the store's lane index after max(d.last,
// lanes.lastHigh), whenever the last read found a backlog (the queue did
// not end within the window) or the device dozes: a high message then
// overtakes the normal messages queued before it. Every urgent message
// with a Seq <= max(d.last, lastHigh) was sent, so the normal walk skips
// the urgent ones at or below lastHigh, and an urgent one it meets above
// it moves lastHigh. A session whose reads find the end of its queue (the
// steady state of an awake device, and the fast path's condition) reads
// no lane at all: every message is then sent as it comes, which is
// arrival order.

// laneState is a session's lane cursors and doze state; guarded by the
// session's mu.
type laneState struct {
	lastHigh uint64 // every urgent message with Seq <= max(last, lastHigh) was sent
	dozing   bool   // the device said DOZE (doze.go)
	release  bool   // a maintenance window: the normal walk runs while dozing, to the end of the queue
	timer    *time.Timer
	acks     []string // control stanzas in effect, to ack before the next read
}

// laneRead is one delivery pass's plan, taken under d.mu.
type laneRead struct {
	urgent bool   // read the urgent lane first
	normal bool   // run the normal walk
	uAfter uint64 // the urgent lane's cursor
}

// planRead decides what a delivery pass reads; called with d.mu held.
func (d *DeviceStream) planRead() laneRead {
	return laneRead{
		urgent: !d.atEnd || d.lanes.dozing,
		normal: !d.lanes.dozing || d.lanes.release,
		uAfter: max(d.last, d.lanes.lastHigh),
	}
}

// readLanes runs the reads p plans, up to room messages: the urgent ones
// first, then the normal walk's. uFull and nFull report whether a read
// filled what it was given (there may be more).
func (d *DeviceStream) readLanes(p laneRead, after uint64, room int, now int64) (urgent, normal []store.Message, uFull, nFull bool, err error) {
	if p.urgent {
		if urgent, err = d.r.st.PendingLane(d.id, store.LaneUrgent, p.uAfter, room, now); err != nil {
			return nil, nil, false, false, err
		}
		uFull = len(urgent) == room
	}
	if p.normal && len(urgent) < room {
		left := room - len(urgent)
		if normal, err = d.r.st.Pending(d.id, after, left, now); err != nil {
			return nil, nil, false, false, err
		}
		nFull = len(normal) == left
	}
	return urgent, normal, uFull, nFull || (p.normal && len(urgent) == room), nil
}

// skipLane reports whether the normal walk must not send m (it moved
// d.last past it already): an urgent message the urgent lane sent. An
// urgent message it sends moves lastHigh. Called with d.mu held.
func (d *DeviceStream) skipLane(m *store.Message) bool {
	if !m.High || m.DelayWhileIdle {
		return false
	}
	if m.Seq <= d.lanes.lastHigh {
		return true
	}
	d.lanes.lastHigh = m.Seq
	return false
}
