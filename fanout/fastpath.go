package fanout

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/ccsd/ccsd/ccs"
	"github.com/ccsd/ccsd/store"
)

// The fast path of a downstream message to an online device (issue 8,
// item 3; docs/decisions.md). As RabbitMQ does for a persistent message
// whose consumer acks it before its write is due, a message to a device
// session that is caught up (nothing queued after its cursor, no delivery
// read running, no slow write to it in flight, window room) is sent at
// once from memory, and its queue write is held back for
// Config.FastPathDelay. If the device acks it within that time, the write
// shrinks to the dedup record (plus the delivery receipt, if one was asked
// for): the message is never queued, never read back, never deleted. If
// not, the full write (dedup, queue entry, indexes) goes to the store as
// it would have at once, and the device's ack becomes a normal store Ack.
//
// The app server is answered once the message is durable or delivered and
// acked by the device; with a receipt, only once the receipt is durable.
//
// Order: a slow write to a device (one that did not take the fast path)
// first writes that device's held messages (flushAll), so the queue keeps
// the order of arrival; a session with a slow write in flight, a delivery
// running or a backlog takes no fast path until a delivery read has found
// the end of its queue again. A new session first waits for a barrier (an
// empty write submitted after its Claim) so that every write that missed
// it in presence is committed before its first read counts as "caught
// up"; a write whose presence lookup raced a login resyncs the new
// session the same way (resync).
//
// Group messages (notification_key) never take it: their copies are one
// atomic write with one dedup record. Topic copies do not either.

// fastState is where a fast message is; guarded by its session's mu.
type fastState uint8

const (
	fastWaiting  fastState = iota // accepted while the session catches up: not sent yet, write held back
	fastHeld                      // sent; its write held back
	fastAcked                     // acked before its write: only dedup (+ receipt) is written
	fastFlushing                  // its full write was submitted, not yet committed
	fastDurable                   // its full write committed (seq known, 0 if nothing was queued)
)

// fastWrite is one downstream message sent on the fast path.
type fastWrite struct {
	d     *DeviceStream
	e     *store.Enqueue // the full write: dedup record and the one copy
	done  func(*ccs.Nack)
	regID string
	msgID string

	// guarded by d.mu
	state      fastState
	seq        uint64 // the queue seq of its full write, once durable
	ackedEarly bool   // the device acked it while its full write was committing
	unsent     bool   // written while waiting: an ordinary queued message now
	receipt    *store.Upstream
	answered   bool
}

// answer gives the app server its answer, once; called without d.mu.
func (fw *fastWrite) answer(n *ccs.Nack) {
	fw.d.mu.Lock()
	first := !fw.answered
	fw.answered = true
	fw.d.mu.Unlock()
	if first {
		fw.done(n)
		fw.d.r.work.Done()
	}
}

// fastReady reports whether the session may send a message on the fast
// path now; called with d.mu held.
func (d *DeviceStream) fastReady() bool {
	return d.caught && !d.running && len(d.waiting) == 0 && d.waitReady() && d.slow.Load() == 0
}

// waitReady reports whether the session may take a message on the fast
// path to send once it has caught up (a delivery read running, a slow
// write in flight): its own arrival order is then kept in memory, and
// later slow writes write it first. Called with d.mu held.
func (d *DeviceStream) waitReady() bool {
	return d.synced && !d.closed && !d.evicted && !d.lanes.dozing() && d.count+len(d.waiting) < d.r.cfg.DeviceWindow
}

// observeRTT adds one ack round trip (ms) to the session's average (an
// exponential one, weight 1/8, as TCP's). A device whose acks take longer
// on average than the delay gains nothing from the fast path, and its app
// server would wait the delay for every ack: it takes the queue until its
// acks come faster again (every message it acks counts, fast or not).
// Called with d.mu held.
func (d *DeviceStream) observeRTT(ms int64) {
	ms = min(max(ms, 0), 60_000)
	d.rtt8 += int32(ms) - d.rtt8/8
}

// tryFast sends e's one copy to d at once, or once d has caught up, and
// holds its write back. It reports false, having done nothing, when d can
// take it neither way, or when its device acks slower than the delay.
func (r *Router) tryFast(d *DeviceStream, e *store.Enqueue, done func(*ccs.Nack)) bool {
	m := &e.Messages[0]
	d.mu.Lock()
	now, wait := false, false
	if d.rtt8/8 <= r.fastDelayMs {
		now = d.fastReady()
		wait = !now && d.waitReady()
	}
	if !now && !wait {
		d.mu.Unlock()
		return false
	}
	fw := &fastWrite{d: d, e: e, done: done, regID: m.RegID, msgID: m.MessageID}
	r.work.Add(1) // until answered
	d.nheld.Add(1)
	var w store.Write
	if now {
		w = d.sendLocked(fw)
	} else {
		fw.state = fastWaiting
		d.waiting = append(d.waiting, fw)
		d.nwait.Add(1)
	}
	d.mu.Unlock()
	if w != nil {
		w.Then(fw.flushed)
		return true
	}
	r.fast.push(fw)
	return true
}

// sendLocked writes fw to the device and holds its write back; if the
// connection is closing it submits the write and returns it (the caller
// calls Then(fw.flushed) once d.mu is released). Called with d.mu held.
func (d *DeviceStream) sendLocked(fw *fastWrite) store.Write {
	m := &fw.e.Messages[0]
	fw.state = fastHeld
	d.inflight[m.MessageID] = append(d.inflight[m.MessageID], deviceInflight{
		regID: m.RegID, senderID: m.SenderID, messageID: m.MessageID, receipt: m.Receipt, sentMs: d.r.nowMs(), fw: fw,
	})
	d.count++
	d.held = append(d.held, fw)
	if d.c.Send(m.Payload, Delivery) != nil {
		return d.flushLocked(fw) // closing: the next session gets it from the queue
	}
	d.r.n.delivered.Inc()
	d.r.n.fastSent.Inc()
	return nil
}

// sendWaiting sends the messages that waited for the session to catch up,
// in order, as the window allows, once a delivery read found the end of
// the queue with no slow write in flight. Called with d.mu held, at the
// end of a delivery run; the caller calls Then(fw.flushed) on what it
// returns once d.mu is released.
func (d *DeviceStream) sendWaiting() (fws []*fastWrite, ws []store.Write) {
	if len(d.waiting) == 0 || !d.caught || d.closed || d.evicted || d.lanes.dozing() || d.slow.Load() != 0 {
		return nil, nil
	}
	n := 0
	for n < len(d.waiting) && d.count < d.r.cfg.DeviceWindow {
		fw := d.waiting[n]
		d.waiting[n] = nil
		n++
		if w := d.sendLocked(fw); w != nil {
			fws, ws = append(fws, fw), append(ws, w)
		}
	}
	d.waiting = append(d.waiting[:0], d.waiting[n:]...)
	d.nwait.Add(int32(-n))
	return fws, ws
}

// flushLocked submits fw's full write if it is still held or waiting, and
// returns it for the caller to call Then(fw.flushed) on once d.mu is
// released; nil if fw is neither. Submitted under d.mu, so a slow write to
// the same device submitted after flushAll follows it in the queue.
func (d *DeviceStream) flushLocked(fw *fastWrite) store.Write {
	switch fw.state {
	case fastHeld:
		d.dropHeld(fw)
		d.queued = append(d.queued, fw)
	case fastWaiting:
		// Never sent: from now on an ordinary queued message, counted as
		// a slow write until delivery has looked at it.
		d.dropWaiting(fw)
		fw.unsent = true
		d.slow.Add(1)
	default:
		return nil
	}
	fw.state = fastFlushing
	d.nheld.Add(-1)
	d.r.work.Add(1)
	d.r.n.fastWritten.Inc()
	return d.r.st.EnqueueAsync(context.Background(), fw.e)
}

// dropWaiting removes fw from d.waiting; called with d.mu held.
func (d *DeviceStream) dropWaiting(fw *fastWrite) {
	for i, h := range d.waiting {
		if h == fw {
			copy(d.waiting[i:], d.waiting[i+1:])
			d.waiting[len(d.waiting)-1] = nil
			d.waiting = d.waiting[:len(d.waiting)-1]
			d.nwait.Add(-1)
			return
		}
	}
}

// dropHeld removes fw from d.held; called with d.mu held.
func (d *DeviceStream) dropHeld(fw *fastWrite) {
	for i, h := range d.held {
		if h == fw {
			copy(d.held[i:], d.held[i+1:])
			d.held[len(d.held)-1] = nil
			d.held = d.held[:len(d.held)-1]
			return
		}
	}
}

// dropQueued removes fw from d.queued; called with d.mu held.
func (d *DeviceStream) dropQueued(fw *fastWrite) {
	for i, q := range d.queued {
		if q == fw {
			copy(d.queued[i:], d.queued[i+1:])
			d.queued[len(d.queued)-1] = nil
			d.queued = d.queued[:len(d.queued)-1]
			return
		}
	}
}

// flushUpTo submits the full writes of d's held and waiting messages up
// to and including fw, in order (the flusher found fw due; those before it
// are older).
func (d *DeviceStream) flushUpTo(fw *fastWrite) {
	d.mu.Lock()
	switch fw.state {
	case fastHeld:
		d.flushPrefix(indexOf(d.held, fw)+1, 0)
	case fastWaiting:
		d.flushPrefix(len(d.held), indexOf(d.waiting, fw)+1)
	default:
		d.mu.Unlock()
	}
}

func indexOf(l []*fastWrite, fw *fastWrite) int {
	for i, x := range l {
		if x == fw {
			return i
		}
	}
	return len(l)
}

// flushAll submits the full writes of every held and waiting message of
// d, in order: before a slow write to d.
func (d *DeviceStream) flushAll() {
	d.mu.Lock()
	d.flushPrefix(len(d.held), len(d.waiting))
}

// flushPrefix flushes the first nh held and nw waiting messages (held
// ones are older) and releases d.mu.
func (d *DeviceStream) flushPrefix(nh, nw int) {
	nh, nw = min(nh, len(d.held)), min(nw, len(d.waiting))
	if nh+nw == 0 {
		d.mu.Unlock()
		return
	}
	fws := make([]*fastWrite, 0, nh+nw)
	fws = append(append(fws, d.held[:nh]...), d.waiting[:nw]...)
	ws := make([]store.Write, len(fws))
	for i, fw := range fws {
		ws[i] = d.flushLocked(fw)
	}
	d.mu.Unlock()
	for i, w := range ws {
		w.Then(fws[i].flushed)
	}
}

// flushed is the outcome of a fast message's full write: the app server is
// answered (durable), and a device ack that came meanwhile becomes the
// store Ack of the seq the write got.
func (fw *fastWrite) flushed(err error) {
	d, r := fw.d, fw.d.r
	defer r.work.Done()
	if fw.unsent {
		fw.flushedUnsent(err)
		return
	}
	d.mu.Lock()
	fw.state = fastDurable
	if err == nil {
		fw.seq = fw.e.Messages[0].Seq // 0: the registration's queue bound stored deleted_messages instead
	}
	if fw.seq == 0 {
		d.dropQueued(fw) // nothing of it is queued
	}
	acked, receipt := fw.ackedEarly, fw.receipt
	gone := d.closed || d.evicted
	d.mu.Unlock()
	var n *ccs.Nack
	switch {
	case err == nil || errors.Is(err, store.ErrDuplicate):
	default:
		r.log.Error().Err(err).Str("sender", fw.e.SenderID).Str("message_id", fw.msgID).Msg("enqueue downstream (fast path)")
		n = storeNack(err)
	}
	fw.answer(n)
	switch {
	case gone:
		r.wakeDevice(d.id) // a newer session delivers it
	case fw.e.Discarded > 0:
		d.Wake() // deleted_messages was queued
	}
	if acked {
		d.ackQueued(fw, receipt)
	}
}

// flushedUnsent is the outcome of the write of a message that waited and
// was written before it was sent: it is answered as a slow write is, and
// delivery reads it.
func (fw *fastWrite) flushedUnsent(err error) {
	d, r := fw.d, fw.d.r
	var n *ccs.Nack
	if err != nil && !errors.Is(err, store.ErrDuplicate) {
		r.log.Error().Err(err).Str("sender", fw.e.SenderID).Str("message_id", fw.msgID).Msg("enqueue downstream (fast path)")
		n = storeNack(err)
	}
	d.mu.Lock()
	gone := d.closed || d.evicted
	d.mu.Unlock()
	if gone {
		r.wakeDevice(d.id)
	}
	d.Wake()
	d.slowDone()
	fw.answer(n)
}

// slowDone ends one slow write to d, after the Wake that makes delivery
// read it: messages that waited behind it go out once that read is done.
func (d *DeviceStream) slowDone() {
	if d.slow.Add(-1) == 0 && d.nwait.Load() > 0 {
		d.Wake()
	}
}

// fastAck handles the device's ack of a message sent on the fast path; f
// was taken from the in-flight index.
func (d *DeviceStream) fastAck(f deviceInflight) {
	fw := f.fw
	var receipt *store.Upstream
	if f.receipt {
		receipt = d.r.receipt(f)
	}
	d.mu.Lock()
	state := fw.state
	switch state {
	case fastHeld:
		fw.state = fastAcked
		d.dropHeld(fw)
	case fastFlushing:
		fw.ackedEarly, fw.receipt = true, receipt
	}
	// The window slot is free at once: the device has the message.
	d.count--
	wake := !d.atEnd || len(d.waiting) > 0
	d.mu.Unlock()
	if wake {
		d.Wake()
	}
	switch state {
	case fastHeld:
		d.r.n.fastAcked.Inc()
		d.r.shrunk(fw, receipt)
	case fastFlushing:
		if receipt == nil {
			fw.answer(nil) // delivered and acked: durable or not, it is done
		}
	case fastDurable:
		d.ackQueued(fw, receipt)
	}
}

// ackQueued deletes the queued copy of a fast message the device acked
// after its full write, with the receipt, as a normal ack does.
func (d *DeviceStream) ackQueued(fw *fastWrite, receipt *store.Upstream) {
	d.mu.Lock()
	seq := fw.seq
	d.mu.Unlock()
	if seq == 0 {
		return
	}
	r := d.r
	r.work.Add(1)
	r.st.AckAsync(context.Background(), d.id, seq, receipt).Then(func(err error) {
		defer r.work.Done()
		switch {
		case err == nil && receipt != nil:
			r.n.receipts.Inc()
			r.wakeSender(receipt.SenderID)
		case err != nil && !errors.Is(err, store.ErrNotFound):
			r.log.Error().Err(err).Str("device", d.id).Str("message_id", fw.msgID).Msg("ack device message")
		}
		d.mu.Lock()
		d.dropQueued(fw)
		d.mu.Unlock()
	})
}

// shrunk writes what is left of a fast message the device acked before its
// write was due: the dedup record, so a retry is not delivered again, and
// the receipt. Without a receipt the app server is answered at once (the
// message is delivered and acked); with one, once the receipt is durable.
func (r *Router) shrunk(fw *fastWrite, receipt *store.Upstream) {
	e := fw.e
	e.Messages, e.Upstream, e.Overflow = nil, receipt, nil
	if receipt == nil {
		fw.answer(nil)
		if e.MessageID == "" {
			return // nothing to write
		}
	}
	r.work.Add(1)
	r.st.EnqueueAsync(context.Background(), e).Then(func(err error) {
		defer r.work.Done()
		dup := errors.Is(err, store.ErrDuplicate)
		if err != nil && !dup {
			r.log.Error().Err(err).Str("sender", e.SenderID).Str("message_id", fw.msgID).Msg("write dedup record (fast path)")
		}
		if receipt == nil {
			return
		}
		if err != nil && !dup {
			fw.answer(storeNack(err)) // no receipt: the app server sends again and gets one then
			return
		}
		fw.answer(nil) // before the receipt can reach the app server
		if err == nil {
			r.n.receipts.Inc()
			r.wakeSender(receipt.SenderID)
		}
	})
}

// skipQueued reports whether m, just read from d's queue, is a fast
// message of this session that was written after all: it is in flight (or
// acked) already and must not be sent twice. Called with d.mu held.
func (d *DeviceStream) skipQueued(m *store.Message) bool {
	for _, fw := range d.queued {
		if fw.regID != m.RegID || fw.msgID != m.MessageID {
			continue
		}
		switch {
		case fw.state == fastFlushing: // committed, its callback not yet run
			return true
		case fw.seq == m.Seq:
			return true
		}
	}
	return false
}

// resync makes d wait for a new barrier before it takes the fast path: a
// write whose presence lookup raced d's login may not be committed yet.
func (d *DeviceStream) resync() {
	d.mu.Lock()
	d.synced, d.caught = false, false
	d.mu.Unlock()
	d.barrier()
}

// barrier submits an empty write; once it is durable every write
// submitted before it is too, and the next delivery read sees them.
func (d *DeviceStream) barrier() {
	d.r.work.Add(1)
	d.r.st.EnqueueAsync(context.Background(), &store.Enqueue{}).Then(func(error) {
		defer d.r.work.Done()
		d.mu.Lock()
		d.synced = true
		start := d.wakeLocked()
		d.mu.Unlock()
		if start {
			go d.run()
		}
	})
}

// fastQueue holds the fast messages whose writes are held back, in the
// order they were sent, for the one flusher goroutine. It ticks every
// delay while anything is held, and writes what was held at the tick
// before: a held write waits between delay and twice delay. No clock is
// read per message.
type fastQueue struct {
	r     *Router
	delay time.Duration

	mu              sync.Mutex
	cur, old, spare []*fastWrite
	active          bool // the flusher is ticking
	stopped         bool // the flusher has exited: push writes at once
	wake            chan struct{}
}

func (q *fastQueue) push(fw *fastWrite) {
	q.mu.Lock()
	if q.stopped {
		q.mu.Unlock()
		fw.d.flushUpTo(fw)
		return
	}
	q.cur = append(q.cur, fw)
	start := !q.active
	q.active = true
	q.mu.Unlock()
	if start {
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
}

// loop is the flusher. On stop it writes everything still held, so a
// graceful shutdown loses nothing.
func (q *fastQueue) loop() {
	defer q.r.work.Done()
	t := time.NewTimer(q.delay)
	t.Stop()
	for {
		select {
		case <-q.r.stop:
			q.flushAll()
			return
		case <-q.wake:
		}
		for q.tick(t) {
		}
	}
}

// tick waits one delay, then writes the messages held since before the
// previous tick. It reports whether anything is still held.
func (q *fastQueue) tick(t *time.Timer) bool {
	t.Reset(q.delay)
	select {
	case <-q.r.stop:
		t.Stop()
		return false
	case <-t.C:
	}
	q.mu.Lock()
	due := q.old
	q.old, q.cur, q.spare = q.cur, q.spare, nil
	more := len(q.old) > 0
	if !more {
		q.active = false
	}
	q.mu.Unlock()
	for _, fw := range due {
		fw.d.flushUpTo(fw)
	}
	clear(due)
	q.mu.Lock()
	q.spare = due[:0]
	q.mu.Unlock()
	return more
}

func (q *fastQueue) flushAll() {
	q.mu.Lock()
	all := append(q.old, q.cur...)
	q.old, q.cur, q.stopped = nil, nil, true
	q.mu.Unlock()
	for _, fw := range all {
		fw.d.flushUpTo(fw)
	}
}
