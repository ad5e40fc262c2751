package fanout

import (
	"time"

	"github.com/ccsd/ccsd/ccs"
)

// The device's doze state (issue 9, item 2; docs/device-protocol.md,
// "Priority and doze"). A session starts awake. A device declares itself
// dozing or awake with a control stanza; the state is per session and in
// memory only. While it dozes, the session reads only the urgent lane
// (lanes.go), takes no fast path, and holds every other message in the
// store, where its time_to_live runs as for any queued message (Pending
// never returns an expired one). Its normal walk resumes on AWAKE, from its
// cursor, so what was held goes out in arrival order; and, so that a
// device never misses normal messages for long, every Config.MaxDozeDelay
// of dozing opens a maintenance window: the normal walk runs once to the
// end of the queue. One timer per dozing session, none per message.

// DefaultMaxDozeDelay is Config.MaxDozeDelay's default: Android's own
// maintenance windows in Doze come about this often at first.
const DefaultMaxDozeDelay = 15 * time.Minute

// maxControlAcks bounds the control stanzas a session has taken and not
// yet answered: a device past it is nacked SERVICE_UNAVAILABLE, as one
// past its upstream window is.
const maxControlAcks = 100

// control handles a DOZE or AWAKE stanza. Its ack is sent by the delivery
// goroutine before its next read (deliver), so every message written after
// the ack was read under the new state.
func (d *DeviceStream) control(st *ccs.Stanza) {
	ct, n := st.Control()
	if n != nil {
		d.nack(st.ID, n)
		return
	}
	d.mu.Lock()
	if d.lanes.doze == nil {
		d.lanes.doze = &dozeState{}
	}
	if len(d.lanes.doze.acks) >= maxControlAcks {
		d.mu.Unlock()
		d.nack(st.ID, &ccs.Nack{Code: ccs.CodeServiceUnavailable, Description: "Too many unanswered control messages: wait for their acks"})
		return
	}
	d.setDoze(ct == ccs.ControlDoze)
	d.lanes.doze.acks = append(d.lanes.doze.acks, st.ID)
	start := d.wakeLocked()
	d.mu.Unlock()
	if start {
		go d.run()
	}
}

// setDoze enters or leaves the doze state; called with d.mu held, d.lanes.doze
// set.
func (d *DeviceStream) setDoze(doze bool) {
	l := d.lanes.doze
	if doze == l.on {
		return // a repeated DOZE keeps its timer: the bound runs from the first
	}
	l.on, l.release = doze, false
	d.atEnd, d.caught = false, false // read under the new state
	switch {
	case doze && d.r.cfg.MaxDozeDelay > 0 && l.timer == nil:
		l.timer = time.AfterFunc(d.r.cfg.MaxDozeDelay, d.maintenance)
	case doze && l.timer != nil:
		l.timer.Reset(d.r.cfg.MaxDozeDelay)
	case l.timer != nil:
		l.timer.Stop()
	}
}

// maintenance opens a maintenance window on a session that has dozed for
// MaxDozeDelay since it began to or since its last window.
func (d *DeviceStream) maintenance() {
	d.mu.Lock()
	if !d.lanes.dozing() || d.closed {
		d.mu.Unlock()
		return
	}
	select {
	case <-d.r.stop:
		d.mu.Unlock()
		return
	default:
	}
	d.lanes.doze.release = true
	d.atEnd = false
	d.lanes.doze.timer.Reset(d.r.cfg.MaxDozeDelay)
	start := d.wakeLocked()
	d.mu.Unlock()
	if start {
		go d.run()
	}
}

// takeControlAcks returns the control stanzas to ack now; called with
// d.mu held.
func (d *DeviceStream) takeControlAcks() []string {
	z := d.lanes.doze
	if z == nil || len(z.acks) == 0 {
		return nil
	}
	acks := z.acks
	z.acks = nil
	return acks
}

// ackControls answers control stanzas taken by takeControlAcks.
func (d *DeviceStream) ackControls(acks []string) {
	for _, id := range acks {
		_ = d.c.Send(ccs.AckJSON("", id), Answer)
	}
}

// stopDoze stops the session's timer as it ends; called with d.mu held.
func (d *DeviceStream) stopDoze() {
	if z := d.lanes.doze; z != nil && z.timer != nil {
		z.timer.Stop()
	}
}
