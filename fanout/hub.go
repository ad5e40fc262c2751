package fanout

import (
	"sync"
	"time"
)

// The upstream dispatcher: one senderHub per sender with app-server
// connections hands that sender's durable upstream queue (device messages
// and receipts, fed by device.go) to its connections, round-robin among
// those with room, and takes back what a closed or silent connection left
// unacked.

// senderHub hands a sender's upstream queue to that sender's app-server
// connections, at most UpstreamWindow unacked messages per connection.
type senderHub struct {
	r  *Router
	id string

	mu       sync.Mutex
	conns    []*AppServerStream
	inflight map[uint64]upInFlight
	// ackedDuring holds the seqs acked since dispatch's last read began.
	// The store contract (store.UpstreamQueues.PendingUpstream) hides only
	// records whose AckUpstream returned before the read was called; one
	// acked while the read runs may still be listed, though it is no
	// longer in flight. Cleared before each read.
	ackedDuring map[uint64]struct{}
	// cursor: every queued seq <= cursor has been handed to a connection
	// (it is in flight, or acked). A connection that closes with messages
	// in flight moves it back below them; maxSent is the highest seq ever
	// handed out, so a read below it knows to expect in-flight entries.
	cursor, maxSent uint64
	// copies numbers every copy handed to a connection, so that an ack
	// can tell its own copy from a later one of the same message.
	copies uint64
	next   int // round-robin start
	wake   chan struct{}
	stop   chan struct{}
}

func newSenderHub(r *Router, id string) *senderHub {
	h := &senderHub{r: r, id: id, inflight: make(map[uint64]upInFlight), ackedDuring: make(map[uint64]struct{}), wake: make(chan struct{}, 1), stop: make(chan struct{})}
	r.work.Add(1)
	go h.loop()
	return h
}

func (h *senderHub) wakeUp() {
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// add registers a connection; called with r.mu held.
func (h *senderHub) add(s *AppServerStream) {
	h.mu.Lock()
	h.conns = append(h.conns, s)
	h.mu.Unlock()
}

// remove drops a connection and frees what was in flight on it. It reports
// whether the hub is now empty (and stopped); called with r.mu held.
func (h *senderHub) remove(s *AppServerStream) bool {
	h.mu.Lock()
	for i, c := range h.conns {
		if c == s {
			h.conns = append(h.conns[:i], h.conns[i+1:]...)
			break
		}
	}
	for seq, f := range h.inflight {
		if f.c == s {
			delete(h.inflight, seq)
			h.cursor = min(h.cursor, seq-1) // deliver it again
		}
	}
	empty := len(h.conns) == 0
	h.mu.Unlock()
	if empty {
		close(h.stop)
	} else {
		h.wakeUp()
	}
	return empty
}

func (h *senderHub) accepting() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.conns {
		if !c.draining.Load() {
			return true
		}
	}
	return false
}

// acked records that the copy numbered copyID of seq was acked and is gone
// from the store. If the message was sent again meanwhile (its ack came
// after UpstreamRedeliver), the newer copy needs no ack any more: the app
// server may never send one, so its connection's slot is freed here.
func (h *senderHub) acked(seq, copyID uint64) {
	h.mu.Lock()
	if f, ok := h.inflight[seq]; ok && f.copyID != copyID {
		f.c.dropSent(seq)
	}
	delete(h.inflight, seq)
	h.ackedDuring[seq] = struct{}{}
	h.mu.Unlock()
	h.wakeUp()
}

func (h *senderHub) loop() {
	defer h.r.work.Done()
	t := time.NewTicker(max(h.r.cfg.UpstreamRedeliver/4, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-h.wake:
			h.dispatch()
		case <-t.C:
			if h.expire() {
				h.dispatch()
			}
		}
	}
}

// upInFlight is an upstream message written to a connection, not acked.
type upInFlight struct {
	c      *AppServerStream
	sentMs int64
	copyID uint64
}

// expire takes back the upstream messages that have waited longer than
// UpstreamRedeliver for an ack, so that they are sent again, even though
// their connection is still up (CCS resends what is not acked, spec §5.3).
// The old copy is forgotten: a late ack of it is ignored, and the new copy
// is acked like any other (app servers dedupe upstream by message_id).
func (h *senderHub) expire() bool {
	deadline := h.r.nowMs() - h.r.cfg.UpstreamRedeliver.Milliseconds()
	h.mu.Lock()
	defer h.mu.Unlock()
	any := false
	for seq, f := range h.inflight {
		if f.sentMs <= deadline {
			delete(h.inflight, seq)
			f.c.dropSent(seq)
			h.cursor = min(h.cursor, seq-1)
			any = true
		}
	}
	return any
}

// dispatch sends queued upstream messages to connections with room.
func (h *senderHub) dispatch() {
	h.mu.Lock()
	clear(h.ackedDuring) // acks committed before this read are not in it
	room := 0
	for _, c := range h.conns {
		if !c.draining.Load() {
			room += max(0, h.r.cfg.UpstreamWindow-c.inFlight())
		}
	}
	after, limit := h.cursor, room
	if after < h.maxSent {
		limit += len(h.inflight) // rewound: in-flight entries lie ahead
	}
	h.mu.Unlock()
	if room == 0 {
		return
	}
	// Read forward from the cursor: in the steady state every entry read
	// is sent, so a dispatch costs what it delivers.
	ups, err := h.r.st.PendingUpstream(h.id, after, limit, h.r.nowMs())
	if err != nil {
		h.r.log.Error().Err(err).Str("sender", h.id).Msg("read upstream queue")
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cursor != after {
		h.wakeUp() // rewound meanwhile by a closed connection: read again
		return
	}
	for i := range ups {
		u := &ups[i]
		_, acked := h.ackedDuring[u.Seq]
		if _, busy := h.inflight[u.Seq]; !busy && !acked {
			c := h.pick()
			if c == nil {
				return // no room left; the cursor stays before u
			}
			h.copies++
			h.inflight[u.Seq] = upInFlight{c: c, sentMs: h.r.nowMs(), copyID: h.copies}
			c.addSent(u, h.copies)
			h.maxSent = max(h.maxSent, u.Seq)
			// A failed Send means the connection is going away; its Closed
			// frees the slot and rewinds the cursor.
			if c.c.Send(u.Payload, Delivery) == nil {
				h.r.n.upDelivered.Inc()
			}
		}
		h.cursor = u.Seq
	}
	if len(ups) == limit {
		h.wakeUp() // maybe more
	}
}

// pick chooses the next connection with upstream room, round-robin.
func (h *senderHub) pick() *AppServerStream {
	for i := range h.conns {
		c := h.conns[(h.next+i)%len(h.conns)]
		if !c.draining.Load() && c.inFlight() < h.r.cfg.UpstreamWindow {
			h.next = (h.next + i + 1) % len(h.conns)
			return c
		}
	}
	return nil
}
