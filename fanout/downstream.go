package fanout

import (
	"context"
	"errors"

	"github.com/ccsd/ccsd/ccs"
	"github.com/ccsd/ccsd/store"
)

// plan is a downstream message resolved to its recipients: the write that
// queues every copy (nil when nothing is to be stored), and for a
// notification_key target the group's per-member outcome.
type plan struct {
	to      string         // the message's "to"
	e       *store.Enqueue // nil: ack without storing (dry run, TTL 0 offline)
	key     string         // the notification_key, when "to" was a group
	success int
	failed  []string // members that cannot receive it (unregistered)
	// With the fast path on (track), the live local session of each copy
	// of e (nil: none), looked up once for both the bounds and the fast
	// path, after reading the claims epoch (see submitSlow).
	track bool
	epoch uint64
	devs  []*DeviceStream
	dev1  [1]*DeviceStream // devs' storage for a single copy
}

// newPlan starts the plan of a message to "to".
func (r *Router) newPlan(to string) *plan {
	p := &plan{to: to, track: r.fastOn}
	if p.track {
		p.epoch = r.claims.Load()
		p.devs = p.dev1[:0]
	}
	return p
}

// resolve plans the delivery of m for sender: m.To is a registration id
// of this sender, or a notification_key of one of its groups. All copies
// of a group message go into one Enqueue, so they are written atomically.
func (r *Router) resolve(sender string, m *ccs.Downstream) (*plan, *ccs.Nack) {
	p := r.newPlan(m.To)
	reg, err := r.st.Registration(m.To)
	switch {
	case err == nil && reg.SenderID != sender:
		return p, registrationNack(m.To, errOtherSender)
	case err == nil:
		if m.RestrictedPackage != "" && m.RestrictedPackage != reg.App {
			return p, ccs.InvalidJSON("INVALID_PACKAGE_NAME", "restricted_package_name does not match the registration's package: "+m.RestrictedPackage)
		}
		if m.DryRun {
			return p, nil
		}
		if nk := r.receiptRoom(sender, m); nk != nil {
			return p, nk
		}
		if !r.downstreamAllowed(reg.ID) {
			return p, ccs.RateExceeded("Downstream")
		}
		now := r.nowMs()
		p.e = r.newEnqueue(sender, m.MessageID, now)
		r.addCopy(p, m, reg, sender, "", now)
		if len(p.e.Messages) == 0 {
			p.e = nil // time_to_live 0 to an offline device: handled, dropped
		}
		return p, nil
	case !errors.Is(err, store.ErrNotFound):
		return p, registrationNack(m.To, err)
	}
	g, gerr := r.st.Group(m.To)
	if gerr != nil && !errors.Is(gerr, store.ErrNotFound) {
		return p, storeNack(gerr)
	}
	if gerr != nil || g.SenderID != sender {
		// Unknown, or another sender's group: the same answer.
		return p, registrationNack(m.To, store.ErrNotFound)
	}
	if m.RestrictedPackage != "" && m.RestrictedPackage != g.App {
		return p, ccs.InvalidJSON("INVALID_PACKAGE_NAME", "restricted_package_name does not match the group's package: "+m.RestrictedPackage)
	}
	if nk := r.receiptRoom(sender, m); nk != nil {
		return p, nk
	}
	now := r.nowMs()
	p.key = g.Key
	p.e = r.newEnqueue(sender, m.MessageID, now)
	if nk := r.fanOut(p, m, &g, sender, "", now); nk != nil {
		return p, nk
	}
	if m.DryRun || len(p.e.Messages) == 0 {
		p.e = nil
	}
	return p, nil
}

// fanOut adds a copy for every live member of g except the registration
// skip (a device writing to its own group), counting the members that
// cannot receive it.
func (r *Router) fanOut(p *plan, m *ccs.Downstream, g *store.Group, from, skip string, now int64) *ccs.Nack {
	regs, errs, err := r.st.Registrations(g.Members)
	if err != nil {
		return storeNack(err)
	}
	if p.track {
		p.devs = make([]*DeviceStream, 0, len(g.Members)) // one allocation, not one per doubling
	}
	for i, member := range g.Members {
		if member == skip {
			continue
		}
		reg := regs[i]
		switch err := errs[i]; {
		case err == nil && reg.SenderID == g.SenderID && reg.App == g.App:
			// A member over its rate fails alone, as an unregistered one
			// does: the sender retries it, the others get the message.
			if !m.DryRun && !r.downstreamAllowed(reg.ID) {
				p.failed = append(p.failed, member)
				continue
			}
			r.addCopy(p, m, reg, from, g.Key, now)
		case err == nil || errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrUnregistered):
			p.failed = append(p.failed, member)
		default:
			return storeNack(err)
		}
	}
	return nil
}

func (r *Router) newEnqueue(sender, messageID string, now int64) *store.Enqueue {
	return r.bound(&store.Enqueue{SenderID: sender, MessageID: messageID, DedupUntil: now + r.cfg.DedupWindow.Milliseconds()})
}

// addCopy renders the copy of m for one registration and adds it to p. A
// time_to_live 0 copy for an offline device is dropped: deliver now or
// never. It still counts as a success: the message was handled as asked.
func (r *Router) addCopy(p *plan, m *ccs.Downstream, reg store.Registration, from, key string, now int64) {
	p.success++
	expires := now + m.TTL*1000
	// The presence lookup only when something below reads it: a load
	// test that lifts the bounds pays none per message (unless the fast
	// path needs the session).
	var s *DeviceStream
	var online bool
	if p.track {
		s = r.localSession(reg.DeviceID)
		online = s != nil
	} else {
		online = (m.TTL == 0 || r.cfg.MaxQueuedPerRegistration > 0 ||
			(m.CollapseKey != "" && r.cfg.MaxCollapseKeys > 0)) && r.deviceOnline(reg.DeviceID)
	}
	if m.TTL == 0 {
		if !online {
			return
		}
		expires = now + r.cfg.ZeroTTLGrace.Milliseconds()
	}
	p.e.Messages = append(p.e.Messages, store.Message{
		DeviceID:    reg.DeviceID,
		RegID:       reg.ID,
		SenderID:    reg.SenderID,
		MessageID:   m.MessageID,
		CollapseKey: m.CollapseKey,
		Expires:     expires,
		Receipt:     m.Receipt,
		Payload:     ccs.DeviceCopyJSON(m, reg.ID, from, reg.App, key, now),
		// The message's lane (lanes.go).
		High:           m.Priority == "high",
		DelayWhileIdle: m.DelayWhileIdle,
		MaxQueued:      r.maxQueued(online),
		// Read by the store only for a message with a collapse key.
		MaxCollapseKeys: r.maxCollapseKeys(online),
	})
	if p.track {
		p.devs = append(p.devs, s)
	}
}

// route sends a planned message on the fast path when it can (one copy,
// to a caught-up local session: fastpath.go), else submits its write.
func (r *Router) route(p *plan, done func(*ccs.Nack)) {
	if p.track && len(p.devs) == 1 && p.devs[0] != nil && p.key == "" && p.e.Upstream == nil &&
		!r.closing.Load() && r.tryFast(p.devs[0], p.e, done) {
		return
	}
	r.submit(p, done)
}

// submit hands a planned write to the store's committer in the caller's
// goroutine, so that messages read one after another from one connection
// are queued in that order, and calls done with the answer once the write
// is durable (or refused), from the store's callback: no goroutine waits
// per message. It wakes the devices the write targets before done runs. A
// retry of a message already accepted (same sender and message_id within
// the dedup window) is acked without being queued again.
//
// With the fast path on, each live session the write targets counts it
// as slow until it is answered, and has its held fast messages written
// first, so nothing overtakes it and the queue keeps the order of arrival.
func (r *Router) submit(p *plan, done func(*ccs.Nack)) {
	e := p.e
	for _, s := range p.devs {
		if s != nil {
			s.slow.Add(1)
			if s.nheld.Load() > 0 {
				s.flushAll()
			}
		}
	}
	r.work.Add(1)
	w := r.st.EnqueueAsync(context.Background(), e)
	if p.track && r.claims.Load() != p.epoch {
		r.resyncRaced(p)
	}
	w.Then(func(err error) {
		defer r.work.Done()
		n := r.enqueued(p, err)
		for _, s := range p.devs {
			if s != nil {
				s.slowDone() // after its Wake: the session reads before the fast path opens
			}
		}
		done(n)
	})
}

// resyncRaced handles a login that raced p's presence lookups: a session
// that claimed its device after the lookup did not count p as slow, and
// its barrier may have been submitted before p. It is made to wait for a
// barrier submitted now, after p.
func (r *Router) resyncRaced(p *plan) {
	for i := range p.e.Messages {
		if s := r.localSession(p.e.Messages[i].DeviceID); s != nil && (i >= len(p.devs) || s != p.devs[i]) {
			s.resync()
		}
	}
}

// enqueued turns the outcome of a downstream write into its answer and
// wakes the sessions that have something new.
func (r *Router) enqueued(p *plan, err error) *ccs.Nack {
	e := p.e
	if errors.Is(err, store.ErrDuplicate) {
		return nil
	}
	if err != nil {
		r.log.Error().Err(err).Str("sender", e.SenderID).Str("message_id", e.MessageID).Msg("enqueue downstream")
		return storeNack(err)
	}
	if e.Discarded > 0 {
		r.log.Info().Str("sender", e.SenderID).Str("message_id", e.MessageID).Int("discarded", e.Discarded).
			Msg("registration queue full: its messages were replaced by deleted_messages")
	}
	if e.Evicted > 0 {
		r.log.Info().Str("sender", e.SenderID).Str("message_id", e.MessageID).Int("evicted", e.Evicted).
			Msg("registration holds its most collapse keys: the oldest collapsible message was deleted")
	}
	for i := range e.Messages {
		if i < len(p.devs) && p.devs[i] != nil {
			p.devs[i].Wake()
		} else {
			r.wakeDevice(e.Messages[i].DeviceID)
		}
	}
	if e.Upstream != nil { // a group copy for the app server
		r.wakeSender(e.Upstream.SenderID)
	}
	return nil
}

// SendResult is the outcome of Send.
type SendResult struct {
	// Nack is set when the message was refused as a whole.
	Nack *ccs.Nack
	// Group is true when the target was a notification_key; Success,
	// Failure and FailedRegistrationIDs then count its members.
	Group                 bool
	Success, Failure      int
	FailedRegistrationIDs []string
}

// Send routes one validated downstream message (see package ccs) for
// sender and returns once it is durably queued. It serves the HTTP
// endpoints, which validate a request once and route one typed message per
// recipient; XMPP connections use the pipelined path of AppServerStream.
func (r *Router) Send(ctx context.Context, sender string, m *ccs.Downstream) SendResult {
	res := r.send(ctx, sender, m)
	if res.Nack != nil {
		r.n.nack(ToAppServer, res.Nack)
	} else {
		r.n.downHTTP.Inc()
	}
	return res
}

func (r *Router) send(ctx context.Context, sender string, m *ccs.Downstream) SendResult {
	if r.draining.Load() {
		return SendResult{Nack: &ccs.Nack{Code: ccs.CodeServiceUnavailable, Description: "Server is shutting down, retry later"}}
	}
	p, n := r.resolve(sender, m)
	if n == nil && p.e != nil {
		if err := ctx.Err(); err != nil {
			return SendResult{Nack: &ccs.Nack{Code: ccs.CodeServiceUnavailable, Description: err.Error()}}
		}
		answer := make(chan *ccs.Nack, 1)
		r.route(p, func(n *ccs.Nack) { answer <- n })
		n = <-answer
	}
	res := SendResult{Nack: n, Group: p.key != ""}
	if n == nil && res.Group {
		res.Success, res.Failure, res.FailedRegistrationIDs = p.success, len(p.failed), p.failed
	}
	return res
}
