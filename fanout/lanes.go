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
	lastHigh uint64     // every urgent message with Seq <= max(last, lastHigh) was sent
	doze     *dozeState // nil until the device sends its first control stanza: 8 bytes per idle session
}

// dozeState is the doze state of a session that ever sent a control
// stanza (doze.go); guarded by the session's mu.
type dozeState struct {
	on      bool // the device said DOZE
	release bool // a maintenance window: the normal walk runs while dozing, to the end of the queue
	timer   *time.Timer
	acks    []string // control stanzas in effect, to ack before the next read
	// idleSkipped: the normal walk passed delay_while_idle messages in a
	// maintenance window; the idle lane sends those with Seq in
	// (lastIdle, idleMax] once the device is awake, before the normal
	// walk goes on.
	idleSkipped       bool
	lastIdle, idleMax uint64
}

// dozing reports whether the device dozes; called with d.mu held.
func (l *laneState) dozing() bool { return l.doze != nil && l.doze.on }

// laneRead is one delivery pass's plan, taken under d.mu.
type laneRead struct {
	urgent bool   // read the urgent lane first
	idle   bool   // read the idle lane: what the device's doze held back
	normal bool   // run the normal walk
	uAfter uint64 // the urgent lane's cursor
	// the idle lane's cursor and end: the delay_while_idle messages the
	// normal walk passed in a maintenance window
	iAfter, iMax uint64
}

// planRead decides what a delivery pass reads; called with d.mu held.
func (d *DeviceStream) planRead() laneRead {
	l := &d.lanes
	p := laneRead{urgent: !d.atEnd, normal: true, uAfter: max(d.last, l.lastHigh)}
	if z := l.doze; z != nil {
		p.urgent = p.urgent || z.on
		p.normal = !z.on || z.release
		if !z.on && z.idleSkipped {
			p.idle, p.iAfter, p.iMax = true, z.lastIdle, z.idleMax
		}
	}
	return p
}

// laneBatch is what one delivery pass read.
type laneBatch struct {
	urgent, idle, normal []store.Message
	full                 bool // a read filled what it was given: there may be more
	idleDone             bool // the idle read found every message it looked for
	normalRan            bool // the normal walk ran
}

// readLanes runs the reads p plans, up to room messages in all: the
// urgent lane, the idle lane, then the normal walk, which runs only once
// the idle lane has given everything held back (those are older).
func (d *DeviceStream) readLanes(p laneRead, after uint64, room int, now int64) (b laneBatch, err error) {
	if p.urgent {
		if b.urgent, err = d.r.st.PendingLane(d.id, store.LaneUrgent, p.uAfter, room, now); err != nil {
			return b, err
		}
		room -= len(b.urgent)
	}
	b.idleDone = !p.idle
	if p.idle && room > 0 {
		if b.idle, err = d.r.st.PendingLane(d.id, store.LaneIdle, p.iAfter, room, now); err != nil {
			return b, err
		}
		n := len(b.idle)
		for n > 0 && b.idle[n-1].Seq > p.iMax {
			n-- // not held back: the normal walk sends it in its turn
		}
		b.idleDone = len(b.idle) < room || n < len(b.idle)
		b.idle = b.idle[:n]
		room -= n
	}
	if p.normal && b.idleDone && room > 0 {
		if b.normal, err = d.r.st.Pending(d.id, after, room, now); err != nil {
			return b, err
		}
		b.normalRan = true
		room -= len(b.normal)
	}
	// Room left with every lane read to its end: nothing more to read.
	b.full = room == 0 || !b.idleDone
	return b, nil
}

// takeRead moves the cursors over what a pass read and enters what is to
// be sent in the in-flight index, in the order to send it. Called with
// d.mu held.
func (d *DeviceStream) takeRead(b *laneBatch, now int64) []store.Message {
	l, z := &d.lanes, d.lanes.doze
	if z != nil && b.normalRan && !b.full {
		z.release = false // a maintenance window ends at the end of the queue
	}
	send := b.normal[:0] // no allocation when only the normal walk read
	if len(b.urgent) > 0 {
		send = b.urgent[:0]
	} else if len(b.idle) > 0 {
		send = b.idle[:0]
	}
	for i := range b.urgent {
		m := &b.urgent[i]
		l.lastHigh = max(l.lastHigh, m.Seq)
		if d.track(m, now) {
			send = append(send, *m)
		}
	}
	for i := range b.idle {
		m := &b.idle[i]
		z.lastIdle = m.Seq // b.idle is empty unless z is set
		if d.track(m, now) {
			send = append(send, *m)
		}
	}
	if z != nil && b.idleDone && z.idleSkipped && !z.on {
		z.idleSkipped, z.lastIdle = false, z.idleMax
	}
	for i := range b.normal {
		m := &b.normal[i]
		d.last = m.Seq
		if d.skipLane(m) {
			continue
		}
		if d.track(m, now) {
			send = append(send, *m)
		}
	}
	return send
}

// skipLane reports whether the normal walk must not send m (it moves
// d.last past it all the same): an urgent message the urgent lane sent,
// or a delay_while_idle one met in a maintenance window, which the idle
// lane sends once the device is awake. An urgent message it sends moves
// lastHigh. Called with d.mu held.
func (d *DeviceStream) skipLane(m *store.Message) bool {
	l := &d.lanes
	switch {
	case m.DelayWhileIdle && l.dozing():
		z := l.doze
		if !z.idleSkipped {
			// Every idle message before it was sent: the normal walk
			// passed them awake.
			z.idleSkipped, z.lastIdle = true, m.Seq-1
		}
		z.idleMax = m.Seq
		return true
	case !m.High || m.DelayWhileIdle:
		return false
	case m.Seq <= l.lastHigh:
		return true
	}
	l.lastHigh = m.Seq
	return false
}
