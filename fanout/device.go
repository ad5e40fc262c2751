package fanout

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/ccsd/ccsd/ccs"
	"github.com/ccsd/ccsd/store"
)

// DeviceStream is one device's live session. A device has at most one: a
// new login replaces the old session, which ends with a conflict stream
// error.
type DeviceStream struct {
	r       *Router
	c       Conn
	id      string // the device id
	sinceMs int64  // when it opened (unix ms): 8 bytes per idle session, the rest of the list entry is asked of c

	pending atomic.Int64 // upstream read, not yet answered
	// slow counts the writes to this device that did not take the fast
	// path and are not yet answered; nheld mirrors len(held)+len(waiting),
	// nwait len(waiting) (fastpath.go).
	slow, nheld, nwait atomic.Int32

	mu       sync.Mutex
	inflight map[string][]deviceInflight // by message_id
	count    int                         // messages in flight
	last     uint64                      // highest queue seq written to this session
	closed   bool
	running  bool // a delivery goroutine is on its way
	again    bool // woken while running: look once more
	// atEnd: the last delivery read found the end of the queue, so an ack
	// needs no new read. synced: a barrier submitted after this session's
	// login is durable. caught: both, the fast path's condition.
	atEnd, synced, caught bool
	evicted               bool         // a newer session took over: no fast path
	rtt8                  int32        // the device's ack round trip, ms, averaged (x8: observeRTT)
	held                  []*fastWrite // sent on the fast path, write held back, in order
	waiting               []*fastWrite // taken for the fast path, to send once caught up, in order
	queued                []*fastWrite // sent on the fast path, then written: not to be sent again
	lanes                 laneState    // priority and doze cursors and state (lanes.go, doze.go)
}

type deviceInflight struct {
	seq       uint64
	regID     string
	senderID  string
	messageID string
	receipt   bool
	sentMs    int64
	fw        *fastWrite // sent on the fast path (fastpath.go)
}

// OpenDevice starts the session of device c.Identity(): everything queued
// for it (including what an earlier session left unacked) is delivered.
func (r *Router) OpenDevice(c Conn) *DeviceStream {
	d := &DeviceStream{
		r: r, c: c, id: c.Identity(), sinceMs: r.nowMs(),
		inflight: make(map[string][]deviceInflight),
	}
	r.devMu.Lock()
	r.devices[d] = struct{}{}
	r.devMu.Unlock()
	r.presence.Claim(d.id, d)
	if r.fastOn {
		r.claims.Add(1) // see Router.submitSlow
		d.barrier()
	}
	d.Wake()
	return d
}

// Evict ends the session because a newer session of the same device took
// over (Presence calls it).
//
// Messages held on the fast path are written first, inside the newer
// session's Claim, so they are queued before its barrier and its first
// read finds them; the session takes no fast path any more.
func (d *DeviceStream) Evict() {
	d.mu.Lock()
	d.evicted = true
	d.flushPrefix(len(d.held), len(d.waiting)) // unlocks
	d.c.Close(Replaced)
}

// Wake makes sure the queue is looked at. Delivery runs in a goroutine
// started on demand, not one parked per session: device sessions are
// long-lived and mostly idle, and each parked goroutine would hold a stack.
func (d *DeviceStream) Wake() {
	d.mu.Lock()
	start := d.wakeLocked()
	d.mu.Unlock()
	if start {
		go d.run()
	}
}

// wakeLocked is Wake with d.mu held; the caller starts run if it returns
// true.
func (d *DeviceStream) wakeLocked() bool {
	if d.closed {
		return false
	}
	if d.running {
		d.again = true
		return false
	}
	d.running = true
	d.r.work.Add(1)
	return true
}

func (d *DeviceStream) run() {
	defer d.r.work.Done()
	for {
		d.deliver()
		d.mu.Lock()
		if !d.again || d.closed {
			d.running = false
			fws, ws := d.sendWaiting()
			d.mu.Unlock()
			for i, w := range ws {
				w.Then(fws[i].flushed)
			}
			return
		}
		d.again = false
		d.mu.Unlock()
	}
}

// deliver writes queued messages after the last one written, up to the
// window, the urgent lane first when there is a backlog (lanes.go). The
// store is the only copy: nothing but the in-flight index is kept in
// memory.
func (d *DeviceStream) deliver() {
	d.mu.Lock()
	// Control stanzas are acked here, after the sends of the pass before:
	// what this pass sends is read under their state.
	acks := d.takeControlAcks()
	room, after, synced := d.r.cfg.DeviceWindow-d.count, d.last, d.synced
	if room <= 0 {
		d.atEnd, d.caught = false, false // acks must look again
		d.mu.Unlock()
		d.ackControls(acks)
		return
	}
	plan := d.planRead()
	d.mu.Unlock()
	d.ackControls(acks)
	now := d.r.nowMs()
	rd, err := d.readLanes(plan, after, room, now)
	if err != nil {
		d.r.log.Error().Err(err).Str("device", d.id).Msg("read device queue")
		d.mu.Lock()
		d.atEnd, d.caught = false, false // the next ack tries again
		d.mu.Unlock()
		return
	}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return
	}
	d.atEnd = !rd.full
	d.caught = d.atEnd && synced && rd.normalRan
	send := d.takeRead(&rd, now)
	d.mu.Unlock()
	d.sendAll(send)
	if rd.full {
		d.Wake() // maybe more
	}
}

// track enters m, just read, in the in-flight index, unless it is a fast
// message of this session written after all (skipQueued). It reports
// whether m is to be sent. Called with d.mu held.
func (d *DeviceStream) track(m *store.Message, now int64) bool {
	if len(d.queued) > 0 && d.skipQueued(m) {
		return false
	}
	d.inflight[m.MessageID] = append(d.inflight[m.MessageID], deviceInflight{
		seq: m.Seq, regID: m.RegID, senderID: m.SenderID, messageID: m.MessageID, receipt: m.Receipt, sentMs: now,
	})
	d.count++
	return true
}

// sendAll writes what a delivery pass read.
func (d *DeviceStream) sendAll(send []store.Message) {
	for i := range send {
		if d.c.Send(send[i].Payload, Delivery) != nil {
			d.r.n.delivered.Add(uint64(i))
			return // closing; the next session delivers them again
		}
	}
	d.r.n.delivered.Add(uint64(len(send)))
}

// Message handles one JSON stanza from the device: an ack of a downstream
// message, or an upstream message.
func (d *DeviceStream) Message(stanzaID string, payload []byte) {
	st, serr := ccs.Decode(payload)
	if serr != nil {
		d.r.n.bounces[ToDevice].Inc()
		_ = d.c.Bounce(stanzaID, payload, serr.Text)
		return
	}
	id := st.ID
	mt, n := st.Type()
	if n != nil {
		d.nack(id, n)
		return
	}
	switch mt {
	case "ack":
		d.ack(id)
	case "":
		d.upstream(st)
	case "control":
		d.control(st)
	case "nack":
		// A device may refuse a message it cannot handle now. It stays
		// queued (offered again next session, or until it expires) but
		// leaves this session's window, which it would otherwise jam.
		if f, ok := d.take(id, 0); ok {
			d.nacked(f)
		}
		d.r.log.Info().Str("device", d.id).Str("message_id", id).Msg("device nacked a message")
	default:
		d.nack(id, ccs.InvalidJSON("INVALID_PARAMETERS", "unknown message_type: "+mt))
	}
}

func (d *DeviceStream) nack(id string, n *ccs.Nack) {
	d.r.n.nack(ToDevice, n)
	_ = d.c.Send(ccs.NackJSON("", id, n), Answer)
}

// ack removes an acked message from the queue and, where the app server
// asked for one, queues its delivery receipt in the same commit.
func (d *DeviceStream) ack(id string) {
	f, ok := d.take(id, d.r.nowMs())
	if !ok {
		return // a duplicate ack, or a message collapsed meanwhile
	}
	d.r.n.deviceAcks.Inc()
	if f.fw != nil {
		d.fastAck(f)
		return
	}

	var receipt *store.Upstream
	if f.receipt {
		receipt = d.r.receipt(f)
	}
	d.r.work.Add(1)
	d.r.st.AckAsync(context.Background(), d.id, f.seq, receipt).Then(func(err error) {
		defer d.r.work.Done()
		switch {
		case err == nil && receipt != nil:
			d.r.n.receipts.Inc()
			d.r.wakeSender(f.senderID)
		case err != nil && !errors.Is(err, store.ErrNotFound):
			d.r.log.Error().Err(err).Str("device", d.id).Str("message_id", id).Msg("ack device message")
		}
		d.release()
	})
}

// take removes the oldest in-flight message with this message_id.
//
// For an ack (ackMs > 0, the time it came) the round trip updates the
// session's average, which decides whether the fast path pays (fastpath.go).
func (d *DeviceStream) take(id string, ackMs int64) (deviceInflight, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	list := d.inflight[id]
	if len(list) == 0 {
		return deviceInflight{}, false
	}
	if ackMs > 0 {
		d.observeRTT(ackMs - list[0].sentMs)
	}
	if len(list) == 1 {
		delete(d.inflight, id)
	} else {
		d.inflight[id] = list[1:]
	}
	return list[0], true
}

// release frees one window slot and looks for more to deliver, unless
// the last read found the end of the queue: whatever is written after it
// wakes the session itself, so a caught-up session acks without a read.
func (d *DeviceStream) release() {
	d.mu.Lock()
	d.count--
	wake := !d.atEnd || len(d.waiting) > 0
	d.mu.Unlock()
	if wake {
		d.Wake()
	}
}

// nacked frees the window slot of a message the device refused. It stays
// queued, offered again on the next session; one sent on the fast path is
// written now.
func (d *DeviceStream) nacked(f deviceInflight) {
	if f.fw == nil {
		d.release()
		return
	}
	d.mu.Lock()
	w := d.flushLocked(f.fw)
	d.mu.Unlock()
	if w != nil {
		w.Then(f.fw.flushed)
	}
	d.release()
}

// receipt renders the delivery receipt of an acked message.
func (r *Router) receipt(f deviceInflight) *store.Upstream {
	app := ""
	if reg, err := r.st.Registration(f.regID); err == nil || errors.Is(err, store.ErrUnregistered) {
		app = reg.App
	}
	return &store.Upstream{
		SenderID:  f.senderID,
		MessageID: "dr2:" + f.messageID,
		Expires:   r.nowMs() + ccs.DefaultTTL*1000,
		Payload:   ccs.ReceiptJSON(f.messageID, f.regID, app, f.sentMs),
	}
}

// upstream accepts a device's message to its app server: it is stored
// durably in the sender's upstream queue, then acked to the device.
func (d *DeviceStream) upstream(st *ccs.Stanza) {
	id := st.ID
	if d.pending.Add(1) > int64(d.r.cfg.MaxPending) {
		d.pending.Add(-1)
		d.nack(id, &ccs.Nack{Code: ccs.CodeServiceUnavailable, Description: "Too many pending messages on this connection: wait for acks before sending more"})
		return
	}
	if to := st.Recipient(); to != "" && !strings.Contains(to, "@") {
		d.toGroup(st, to)
		return
	}
	u, n := d.prepareUpstream(st)
	if n != nil || u == nil {
		d.answer(id, n)
		return
	}
	d.r.work.Add(1)
	// Submitted here, on the reader, so pipelined messages keep their order.
	d.r.st.PushUpstreamAsync(context.Background(), u).Then(func(err error) {
		defer d.r.work.Done()
		if err != nil {
			d.r.log.Error().Err(err).Str("device", d.id).Str("message_id", id).Msg("queue upstream message")
			d.answer(id, storeNack(err))
			return
		}
		d.answer(id, nil)
		d.r.wakeSender(u.SenderID)
	})
}

// answer acks (n == nil) or nacks an upstream message and frees its
// pending slot. The slot is freed first, as the app-server path does, so a
// device that sends its next message the moment it reads this answer
// always finds room.
func (d *DeviceStream) answer(id string, n *ccs.Nack) {
	d.pending.Add(-1)
	if n == nil {
		d.r.n.upAccepted.Inc()
		_ = d.c.Send(ccs.AckJSON("", id), Answer)
	} else {
		d.nack(id, n)
	}
}

// prepareUpstream validates a device upstream message and renders what the
// app server will receive. A nil message with a nil nack means "ack, store
// nothing" (time_to_live 0 while no app server is connected).
func (d *DeviceStream) prepareUpstream(st *ccs.Stanza) (*store.Upstream, *ccs.Nack) {
	up, n := st.Upstream()
	if n != nil {
		return nil, n
	}
	id, to, category, ttl := st.ID, up.To, up.Category, up.TTL
	sender, ok := d.r.senderAddress(to)
	if !ok {
		return nil, &ccs.Nack{Code: ccs.CodeBadRegistration, Description: "Invalid 'to' field: expected SENDER_ID@" + d.r.cfg.Domain + ": " + to}
	}
	reg, err := d.r.st.FindRegistration(d.id, sender, category)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, &ccs.Nack{Code: ccs.CodeBadRegistration, Description: "This device has no registration of " + category + " for sender " + sender}
		}
		return nil, storeNack(err)
	}
	if n := d.r.upstreamAllowed(reg.ID); n != nil {
		return nil, n
	}
	now := d.r.nowMs()
	expires := now + ttl*1000
	if ttl == 0 {
		if !d.r.senderOnline(sender) {
			return nil, nil
		}
		expires = now + d.r.cfg.ZeroTTLGrace.Milliseconds()
	}
	if n := d.r.upstreamRoom(sender); n != nil {
		return nil, n
	}
	return &store.Upstream{
		SenderID:  sender,
		MessageID: id,
		Expires:   expires,
		Payload:   ccs.UpstreamJSON(category, up.Data, id, reg.ID, ttl),
	}, nil
}

// toGroup sends a device's message to the other members of its group: the
// user's other devices get it as a downstream message from the
// notification_key. With a collapse_key it replaces their unsent message of
// the same collapse_key (a dismissal). The device is acked once every copy
// is committed, in one transaction.
func (d *DeviceStream) toGroup(st *ccs.Stanza, key string) {
	id := st.ID
	p, n := d.planGroup(st, key)
	if n != nil || p.e == nil {
		d.answer(id, n)
		return
	}
	d.r.submit(p, func(n *ccs.Nack) { d.answer(id, n) })
}

func (d *DeviceStream) planGroup(st *ccs.Stanza, key string) (*plan, *ccs.Nack) {
	category, n := st.CheckedCategory()
	if n != nil {
		return nil, n
	}
	g, err := d.r.st.Group(key)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, &ccs.Nack{Code: ccs.CodeBadRegistration, Description: "Unknown notification_key: " + key}
		}
		return nil, storeNack(err)
	}
	if category != g.App {
		return nil, &ccs.Nack{Code: ccs.CodeBadRegistration, Description: "The notification_key belongs to another app than " + category}
	}
	reg, err := d.r.st.FindRegistration(d.id, g.SenderID, g.App)
	if err != nil || !slices.Contains(g.Members, reg.ID) {
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, storeNack(err)
		}
		return nil, &ccs.Nack{Code: ccs.CodeBadRegistration, Description: "This device is not a member of the notification_key's group"}
	}
	if n := d.r.upstreamAllowed(reg.ID); n != nil {
		return nil, n
	}
	m, n := st.Downstream()
	if n != nil {
		return nil, n
	}
	m.Receipt = false // receipts are for app servers' messages
	now := d.r.nowMs()
	// No dedup record: a device's message ids are unique only per device.
	p := d.r.newPlan(key)
	p.key, p.e = g.Key, d.r.bound(&store.Enqueue{SenderID: g.SenderID})
	if n := d.r.fanOut(p, m, &g, g.Key, reg.ID, now); n != nil {
		return nil, n
	}
	if n := d.r.groupCopy(p.e, m, &g, reg.ID, now); n != nil {
		return nil, n
	}
	if len(p.e.Messages) == 0 && p.e.Upstream == nil {
		p.e = nil
	}
	return p, nil
}

// groupCopy adds to e, when g's sender has group copies on, the app
// server's copy of a device's message to g: an upstream message "to" the
// notification_key, written in the same transaction as the members'
// copies, so the app server sees exactly the group messages the devices
// get. It lives as long as the message (time_to_live; 0: only if an app
// server is connected), and counts against the sender's upstream queue
// cap: a full queue refuses the whole message (SERVICE_UNAVAILABLE), the
// device retries, and the app server's state never misses one.
func (r *Router) groupCopy(e *store.Enqueue, m *ccs.Downstream, g *store.Group, fromReg string, now int64) *ccs.Nack {
	s, err := r.st.Sender(g.SenderID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil
	case err != nil:
		return storeNack(err)
	case !s.GroupCopies || s.Revoked:
		return nil
	}
	expires := now + m.TTL*1000
	if m.TTL == 0 {
		if !r.senderOnline(g.SenderID) {
			return nil
		}
		expires = now + r.cfg.ZeroTTLGrace.Milliseconds()
	}
	if n := r.upstreamRoom(g.SenderID); n != nil {
		return n
	}
	e.Upstream = &store.Upstream{
		SenderID:  g.SenderID,
		MessageID: m.MessageID,
		Expires:   expires,
		Payload:   ccs.GroupCopyJSON(g.Key, g.App, m.Data, m.MessageID, fromReg, m.TTL),
	}
	return nil
}

// senderAddress parses "SENDER@gcm.googleapis.com" (or an accepted alias
// domain) into the sender id.
func (r *Router) senderAddress(to string) (string, bool) {
	sender, domain, ok := strings.Cut(to, "@")
	if !ok || sender == "" || !r.domains[domain] {
		return "", false
	}
	return sender, true
}

// Closed is called once the device's reader has stopped. Messages in flight
// stay queued and are delivered again on the next session.
func (d *DeviceStream) Closed() {
	d.mu.Lock()
	d.closed = true
	d.stopDoze()
	d.flushPrefix(len(d.held), len(d.waiting)) // unlocks: what was held is queued for the next session
	d.r.devMu.Lock()
	delete(d.r.devices, d)
	d.r.devMu.Unlock()
	d.r.presence.Release(d.id, d)
}
