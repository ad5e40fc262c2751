package fanout

import (
	"encoding/json"

	"github.com/ccsd/ccsd/ccs"
	"github.com/ccsd/ccsd/internal/limit"
	"github.com/ccsd/ccsd/store"
)

// The limits that keep one registration or sender from filling the disk or
// starving others. Every check is in memory: a token bucket per
// registration (internal/limit), the store's in-memory upstream usage, and
// the per-registration count the store keeps in the enqueue's own
// transaction. None costs a store write.

// quotas holds the router's limiters.
type quotas struct {
	up, down *limit.Rate // per registration id
	topic    *limit.Rate // per sender and topic
}

func newQuotas(cfg *Config) quotas {
	return quotas{
		up:    limit.PerMinute(max(cfg.UpstreamRate, 0), 0).WithClock(cfg.Now),
		down:  limit.PerMinute(max(cfg.DownstreamRate, 0), 0).WithClock(cfg.Now),
		topic: limit.PerMinute(max(cfg.TopicRate, 0), 0).WithClock(cfg.Now),
	}
}

// topicAllowed spends one of the topic's messages (the key holds the
// sender: topics of two senders are two topics).
func (r *Router) topicAllowed(sender, topic string) *ccs.Nack {
	if !r.q.topic.Allow(sender + "\x00" + topic) {
		return &ccs.Nack{Code: ccs.CodeTopicsMessageRateExceeded, Description: "Topic message rate exceeded for /topics/" + topic}
	}
	return nil
}

// upstreamAllowed spends one of the registration's upstream messages.
func (r *Router) upstreamAllowed(regID string) *ccs.Nack {
	if !r.q.up.Allow(regID) {
		r.n.upRate.Inc()
		return ccs.RateExceeded("Upstream")
	}
	return nil
}

// downstreamAllowed spends one of the registration's downstream messages.
func (r *Router) downstreamAllowed(regID string) bool {
	if !r.q.down.Allow(regID) {
		r.n.downRate.Inc()
		return false
	}
	return true
}

// upstreamRoom refuses a device upstream message when the sender's
// upstream queue is at its cap, in messages or bytes. The usage read is the
// committed one, so concurrent pushes may overshoot the cap by the messages
// in flight (at most MaxPending per device session). Receipts are not
// refused when the device acks (a device's ack must not fail): receiptRoom
// bounds them earlier, at the downstream message that asks for one.
func (r *Router) upstreamRoom(sender string) *ccs.Nack {
	u := r.st.UpstreamUsage(sender)
	full := (r.cfg.MaxUpstreamQueued > 0 && u.Messages >= r.cfg.MaxUpstreamQueued) ||
		(r.cfg.MaxUpstreamQueuedBytes > 0 && u.Bytes >= r.cfg.MaxUpstreamQueuedBytes)
	if !full {
		return nil
	}
	r.n.upQueueFull.Inc()
	return &ccs.Nack{Code: ccs.CodeServiceUnavailable, Description: "The app server's upstream queue is full: retry later"}
}

// receiptRoom refuses a downstream message that asks for a delivery
// receipt while its sender's upstream queue, where the receipt would wait,
// is at its cap: the app server may retry it later (after reading its
// queue over XMPP) or send it without a receipt. Nothing already accepted
// is dropped for it: receipts of messages accepted before the cap was
// reached are still queued when their devices ack, so the queue overshoots
// the cap by at most those messages. One in-memory read, no store write.
func (r *Router) receiptRoom(sender string, m *ccs.Downstream) *ccs.Nack {
	if !m.Receipt || m.DryRun || r.upstreamRoom(sender) == nil {
		return nil
	}
	return &ccs.Nack{Code: ccs.CodeServiceUnavailable, Description: "The app server's upstream queue, where delivery receipts wait, is full: read it over XMPP, or retry later"}
}

// bound makes an enqueue able to apply the per-registration queue bound.
func (r *Router) bound(e *store.Enqueue) *store.Enqueue {
	if r.cfg.MaxQueuedPerRegistration > 0 {
		e.Overflow = r.overflow
	}
	return e
}

// maxQueued is the bound on a registration's queued messages without a
// collapse key, and maxCollapseKeys the bound on its distinct queued
// collapse keys, for a copy to a device online or not.
func (r *Router) maxQueued(online bool) int {
	return r.raisedOnline(r.cfg.MaxQueuedPerRegistration, online)
}

func (r *Router) maxCollapseKeys(online bool) int {
	return r.raisedOnline(r.cfg.MaxCollapseKeys, online)
}

// raisedOnline applies one of GCM's per-registration bounds (100 queued, 4
// collapse keys), which were on what is stored for an offline device. A
// device with a live session is sent its messages as they come and acks
// them, so it may be behind by its window plus a burst of the downstream
// rate without being slow: its bound is that much higher, so that an
// honest device never loses messages to it, while one that never acks
// still has a bounded queue. 0 (or less) is no bound.
func (r *Router) raisedOnline(bound int, online bool) int {
	if bound <= 0 {
		return 0
	}
	if online {
		bound += r.cfg.DeviceWindow + r.q.down.Burst()
	}
	return bound
}

// deletedMessages renders the message that replaces a registration's
// discarded messages (GCM's "deleted_messages"): the app is to do a full
// sync with its server. It runs inside the store's write, given the message
// that overflowed, whose payload names the app.
func (r *Router) deletedMessages(m *store.Message) store.Message {
	id := r.nextID("deleted-")
	now := r.nowMs()
	var v struct {
		Category string `json:"category"`
	}
	_ = json.Unmarshal(m.Payload, &v)
	return store.Message{
		MessageID: id,
		Expires:   now + ccs.MaxTTL*1000,
		Payload:   ccs.DeletedMessagesJSON(id, m.RegID, m.SenderID, v.Category, now),
	}
}
