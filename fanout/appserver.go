package fanout

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ccsd/ccsd/ccs"
	"github.com/ccsd/ccsd/store"
)

// AppServerStream is one authenticated app-server connection.
type AppServerStream struct {
	r      *Router
	c      Conn
	sender string
	hub    *senderHub
	id     string    // c.ID(): the key of Router.appConns
	since  time.Time // when it opened
	age    *time.Timer
	// closed is closed by Closed, so that a drain waiting for this
	// connection's answers stops waiting for a connection that is gone.
	closed   chan struct{}
	drainJob atomic.Bool // a drain on demand was started (drainConn)

	pending   atomic.Int64 // downstream read, not yet answered
	answering atomic.Int64 // answers between leaving pending and being queued
	draining  atomic.Bool

	mu   sync.Mutex
	sent map[string][]sentUpstream // upstream in flight here, by message_id
	nup  int                       // len of all lists in sent
}

type sentUpstream struct {
	seq     uint64
	copyID  uint64 // the hub's number of this copy
	payload []byte // read for its "from" only when message ids collide
}

// OpenAppServer starts the routing of one app-server connection, after its
// SASL login as sender c.Identity().
func (r *Router) OpenAppServer(c Conn) *AppServerStream {
	s := &AppServerStream{
		r: r, c: c, sender: c.Identity(), sent: make(map[string][]sentUpstream),
		id: c.ID(), since: r.cfg.Now(), closed: make(chan struct{}),
	}
	r.mu.Lock()
	h := r.hubs[s.sender]
	if h == nil {
		h = newSenderHub(r, s.sender)
		r.hubs[s.sender] = h
	}
	h.add(s)
	s.hub = h
	r.appConns[s.id] = s
	draining := r.draining.Load()
	r.mu.Unlock()
	if draining {
		s.startDrain()
	} else if age := r.cfg.MaxConnectionAge; age > 0 {
		s.age = time.AfterFunc(jitter(age), func() { r.drainConns([]*AppServerStream{s}, "max connection age") })
	}
	h.wakeUp()
	return s
}

// Message handles one JSON stanza from the app server: it is decoded by
// package ccs, then routed as the typed value it is.
func (s *AppServerStream) Message(stanzaID string, payload []byte) {
	st, serr := ccs.Decode(payload)
	if serr != nil {
		s.r.n.bounces[ToAppServer].Inc()
		_ = s.c.Bounce(stanzaID, payload, serr.Text)
		return
	}
	mt, n := st.Type()
	if n != nil {
		s.nack(st, n)
		return
	}
	switch mt {
	case "":
		s.downstream(st)
	case "ack":
		s.ack(st)
	case "nack":
		s.nack(st, &ccs.Nack{Code: ccs.CodeBadAck, Description: "app servers acknowledge upstream messages with ack; nack is not accepted"})
	default:
		s.nack(st, ccs.InvalidJSON("INVALID_PARAMETERS", "unknown message_type: "+mt))
	}
}

func (s *AppServerStream) nack(st *ccs.Stanza, n *ccs.Nack) {
	s.r.n.nack(ToAppServer, n)
	_ = s.c.Send(ccs.NackJSON(st.Recipient(), st.ID, n), Answer)
}

// downstream validates one message and, once it is durably queued, acks it.
func (s *AppServerStream) downstream(st *ccs.Stanza) {
	if s.pending.Add(1) > int64(s.r.cfg.MaxPending) {
		s.pending.Add(-1)
		s.nack(st, &ccs.Nack{Code: ccs.CodeServiceUnavailable, Description: "Too many pending messages on this connection: wait for acks before sending more"})
		return
	}
	// Checked after taking the slot: Drain sets draining before it waits
	// for pending to reach zero, so every message accepted here is one
	// Drain waits for, and its ack reaches the client before the close.
	if s.draining.Load() {
		s.answer(st, &ccs.Nack{Code: ccs.CodeConnectionDraining, Description: "Connection is draining: send this message on another connection"})
		return
	}
	m, n := st.Downstream()
	if n != nil {
		s.answer(st, n)
		return
	}
	if _, ok := ccs.TopicOf(m.To); ok || m.Condition != "" {
		s.topicDownstream(m)
		return
	}
	p, n := s.r.resolve(s.sender, m)
	if n != nil || p.e == nil {
		s.reply(m.MessageID, p, n) // p.e == nil: dry run or nothing to store
		return
	}
	id := m.MessageID
	s.r.route(p, func(n *ccs.Nack) { s.reply(id, p, n) })
}

// reply answers a routed downstream message and frees its pending slot. A
// message to a notification_key is answered with the group's counts.
func (s *AppServerStream) reply(id string, p *plan, n *ccs.Nack) {
	// The slot is freed before the answer is queued, so a client that
	// sends its next message the moment it reads the answer always finds
	// room; answering keeps Drain from closing the connection in between.
	s.answering.Add(1)
	s.pending.Add(-1)
	defer s.answering.Add(-1)
	switch {
	case n != nil:
		to := ""
		if p != nil {
			to = p.to
		}
		s.r.n.nack(ToAppServer, n)
		_ = s.c.Send(ccs.NackJSON(to, id, n), Answer)
	case p.key != "":
		s.r.n.downXMPP.Inc()
		_ = s.c.Send(ccs.GroupAckJSON(p.key, id, p.success, p.failed), Answer)
	default:
		s.r.n.downXMPP.Inc()
		_ = s.c.Send(ccs.AckJSON(p.to, id), Answer)
	}
}

// answer acks (n == nil) or nacks a downstream message and frees its
// pending slot.
func (s *AppServerStream) answer(st *ccs.Stanza, n *ccs.Nack) {
	s.reply(st.ID, &plan{to: st.Recipient()}, n)
}

// ack handles the app server's ack of an upstream message or receipt. Some
// clients ack a receipt without its "dr2:" prefix (spec §15): both match.
func (s *AppServerStream) ack(st *ccs.Stanza) {
	id := st.ID
	to, n := st.CheckedTo()
	if n != nil {
		s.nack(st, &ccs.Nack{Code: ccs.CodeBadAck, Description: "ack field \"to\" must be a JSON string"})
		return
	}
	su, ok := s.takeSent(id, to)
	if !ok {
		su, ok = s.takeSent("dr2:"+id, to)
	}
	if !ok {
		// Already acked, or sent on another connection: acks are valid
		// only on the connection that carried the message.
		s.r.log.Debug().Str("sender", s.sender).Str("message_id", id).Msg("ack for no message in flight on this connection")
		return
	}
	s.r.n.upAcks.Inc()
	s.r.work.Add(1)
	s.r.st.AckUpstreamAsync(context.Background(), s.sender, su.seq).Then(func(err error) {
		defer s.r.work.Done()
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			s.r.log.Error().Err(err).Str("sender", s.sender).Msg("ack upstream")
		}
		s.hub.acked(su.seq, su.copyID)
	})
}

func (s *AppServerStream) takeSent(id, to string) (sentUpstream, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	list := s.sent[id]
	for i, su := range list {
		// message_ids are chosen per device, so two in flight may share one;
		// only then is the payload parsed for the "from" the ack names.
		if len(list) == 1 || to == "" || upstreamFrom(su.payload) == to {
			s.forgetSent(id, list, i)
			return su, true
		}
	}
	return sentUpstream{}, false
}

func (s *AppServerStream) startDrain() {
	if s.draining.Swap(true) {
		return
	}
	_ = s.c.Send(ccs.DrainingJSON(s.r.nextID("drain-")), Answer)
	s.hub.wakeUp() // moves new upstream to other connections
}

// waitAnswered waits until every downstream message read on this connection
// has been acked or nacked.
func (s *AppServerStream) waitAnswered(ctx context.Context) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	// pending is read first: a reply leaves it only after entering
	// answering, so pending == 0 then answering == 0 means all are queued.
	for s.pending.Load() > 0 || s.answering.Load() > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// Closed is called once the connection's reader has stopped. Upstream
// messages still in flight on it go back to the queue for another
// connection (or the next one).
func (s *AppServerStream) Closed() {
	r := s.r
	if s.age != nil {
		s.age.Stop()
	}
	close(s.closed)
	r.mu.Lock()
	delete(r.appConns, s.id)
	if s.hub.remove(s) {
		delete(r.hubs, s.sender)
	}
	r.mu.Unlock()
}

func (s *AppServerStream) inFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nup
}

// dropSent forgets an upstream message this connection holds, when it is
// taken back for redelivery.
func (s *AppServerStream) dropSent(seq uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, list := range s.sent {
		for i, su := range list {
			if su.seq == seq {
				s.forgetSent(id, list, i)
				return
			}
		}
	}
}

// forgetSent drops list[i], the copy of message id that s.sent holds;
// called with s.mu held.
func (s *AppServerStream) forgetSent(id string, list []sentUpstream, i int) {
	list = append(list[:i], list[i+1:]...)
	if len(list) == 0 {
		delete(s.sent, id)
	} else {
		s.sent[id] = list
	}
	s.nup--
}

// addSent records an upstream message written on this connection; the
// receipt's or message's "from" lets an ack name it unambiguously.
func (s *AppServerStream) addSent(u *store.Upstream, copyID uint64) {
	s.mu.Lock()
	s.sent[u.MessageID] = append(s.sent[u.MessageID], sentUpstream{seq: u.Seq, copyID: copyID, payload: u.Payload})
	s.nup++
	s.mu.Unlock()
}

// CloseSender ends every app-server connection of sender with a
// not-authorized stream error: a revoked API key must not keep the sessions
// it opened. Messages in flight on them stay queued. It returns how many
// connections it closed.
func (r *Router) CloseSender(sender string) int {
	r.mu.Lock()
	var conns []*AppServerStream
	if h := r.hubs[sender]; h != nil {
		h.mu.Lock()
		conns = append(conns, h.conns...)
		h.mu.Unlock()
	}
	r.mu.Unlock()
	for _, c := range conns {
		c.c.Close(Revoked)
	}
	return len(conns)
}

// upstreamFrom reads the "from" of a queued upstream payload: the sending
// registration id, or gcm.googleapis.com for a receipt.
func upstreamFrom(payload []byte) string {
	var v struct {
		From string `json:"from"`
	}
	_ = json.Unmarshal(payload, &v)
	return v.From
}
