package memstore

import (
	"context"
	"fmt"
	"slices"

	"github.com/ccsd/ccsd/store"
)

// Enqueue implements store.Queues.
func (db *DB) Enqueue(ctx context.Context, e *store.Enqueue) error {
	return db.EnqueueAsync(ctx, e).Wait(ctx)
}

// EnqueueAsync implements store.Queues. The write is done before it
// returns, which trivially keeps submission order.
func (db *DB) EnqueueAsync(ctx context.Context, e *store.Enqueue) store.Write {
	if e.Upstream != nil && e.Upstream.SenderID == "" {
		return done{fmt.Errorf("memstore: enqueue: upstream copy has no sender id")}
	}
	for i := range e.Messages {
		if e.Messages[i].DeviceID == "" {
			return done{fmt.Errorf("memstore: enqueue: message %d has no device id", i)}
		}
		if e.Messages[i].MaxQueued > 0 && e.Overflow == nil {
			return done{fmt.Errorf("memstore: enqueue: message %d has a MaxQueued but no Overflow", i)}
		}
	}
	if err := db.write(ctx); err != nil {
		return done{err}
	}
	defer db.mu.Unlock()
	now := db.now().UnixMilli()
	dk := [2]string{e.SenderID, e.MessageID}
	if e.MessageID != "" {
		if until, ok := db.dedup[dk]; ok && until >= now {
			return done{fmt.Errorf("memstore: enqueue %s/%s: %w", e.SenderID, e.MessageID, store.ErrDuplicate)}
		}
		delete(db.dedup, dk)
	}
	db.putCopies(e)
	if e.MessageID != "" && e.DedupUntil >= now {
		db.dedup[dk] = e.DedupUntil
	}
	return done{}
}

// putCopies queues every message of e (collapse, bounds), under mu.
func (db *DB) putCopies(e *store.Enqueue) {
	e.Discarded, e.Evicted = 0, 0
	for i := range e.Messages {
		m := &e.Messages[i]
		m.Seq = 0
		if m.CollapseKey == "" && m.MaxQueued > 0 && db.regQueued(m.DeviceID, m.RegID) >= m.MaxQueued {
			e.Discarded += db.overflow(e, m) + 1
			continue
		}
		e.Evicted += db.evictCollapsible(m)
		db.putMessage(m)
	}
	if e.Upstream != nil {
		db.pushUpstream(e.Upstream)
	}
}

// regQueued counts the registration's queued messages without a collapse
// key.
func (db *DB) regQueued(deviceID, regID string) int {
	q := db.queues[deviceID]
	if q == nil {
		return 0
	}
	return len(seqsOf(q.msgs, func(m *store.Message) bool { return m.RegID == regID && m.CollapseKey == "" }))
}

// evictCollapsible applies m.MaxCollapseKeys: when m brings a collapse key
// its registration has not queued and the registration holds that many
// keys, its oldest messages with a collapse key (the reserved one aside)
// are deleted until one slot is free. It returns how many.
func (db *DB) evictCollapsible(m *store.Message) int {
	if m.MaxCollapseKeys <= 0 || m.CollapseKey == "" || m.CollapseKey == deletedMessagesKey {
		return 0
	}
	if _, ok := db.collapse[[2]string{m.RegID, m.CollapseKey}]; ok {
		return 0
	}
	q := db.queues[m.DeviceID]
	if q == nil {
		return 0
	}
	held := seqsOf(q.msgs, func(q *store.Message) bool {
		return q.RegID == m.RegID && q.CollapseKey != "" && q.CollapseKey != deletedMessagesKey
	})
	n := max(len(held)-m.MaxCollapseKeys+1, 0)
	for _, seq := range held[:n] {
		db.deleteMessage(m.DeviceID, seq)
	}
	return n
}

// overflow deletes m's registration's messages without a collapse key and
// queues e.Overflow's message instead; it returns how many it deleted.
func (db *DB) overflow(e *store.Enqueue, m *store.Message) int {
	doomed := seqsOf(db.queues[m.DeviceID].msgs, func(q *store.Message) bool { return q.RegID == m.RegID && q.CollapseKey == "" })
	for _, seq := range doomed {
		db.deleteMessage(m.DeviceID, seq)
	}
	d := e.Overflow(m)
	d.DeviceID, d.RegID, d.SenderID, d.CollapseKey = m.DeviceID, m.RegID, m.SenderID, deletedMessagesKey
	db.putMessage(&d)
	return len(doomed)
}

// putMessage appends a copy of m to its device's queue, replacing the
// message holding its collapse key, and sets m.Seq.
func (db *DB) putMessage(m *store.Message) {
	ck := [2]string{m.RegID, m.CollapseKey}
	if m.CollapseKey != "" {
		if w, ok := db.collapse[ck]; ok {
			db.deleteMessage(w.dev, w.seq)
		}
	}
	q := db.queues[m.DeviceID]
	if q == nil {
		q = &queue{}
		db.queues[m.DeviceID] = q
	}
	q.next++
	m.Seq = q.next
	c := *m
	c.Payload, c.MaxQueued, c.MaxCollapseKeys = cloneBytes(m.Payload), 0, 0
	q.msgs = append(q.msgs, c)
	if m.CollapseKey != "" {
		db.collapse[ck] = where{m.DeviceID, m.Seq}
	}
}

// deleteMessage removes one queued message and its collapse entry.
func (db *DB) deleteMessage(deviceID string, seq uint64) (store.Message, bool) {
	q := db.queues[deviceID]
	if q == nil {
		return store.Message{}, false
	}
	i, ok := slices.BinarySearchFunc(q.msgs, seq, func(m store.Message, s uint64) int {
		return cmpSeq(m.Seq, s)
	})
	if !ok {
		return store.Message{}, false
	}
	m := q.msgs[i]
	q.msgs = slices.Delete(q.msgs, i, i+1)
	ck := [2]string{m.RegID, m.CollapseKey}
	if m.CollapseKey != "" && db.collapse[ck] == (where{deviceID, seq}) {
		delete(db.collapse, ck)
	}
	return m, true
}

func cmpSeq(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Pending implements store.Queues.
func (db *DB) Pending(deviceID string, after uint64, limit int, nowMs int64) ([]store.Message, error) {
	if err := db.lock(); err != nil {
		return nil, err
	}
	defer db.mu.Unlock()
	var out []store.Message
	if q := db.queues[deviceID]; q != nil {
		for _, m := range q.msgs {
			if m.Seq <= after || expired(m.Expires, nowMs) {
				continue
			}
			if limit > 0 && len(out) == limit {
				break
			}
			m.Payload = cloneBytes(m.Payload)
			out = append(out, m)
		}
	}
	return out, nil
}

// Ack implements store.Queues.
func (db *DB) Ack(ctx context.Context, deviceID string, seq uint64, receipt *store.Upstream) (store.Message, error) {
	if receipt != nil && receipt.SenderID == "" {
		return store.Message{}, fmt.Errorf("memstore: ack %s/%d: receipt has no sender id", deviceID, seq)
	}
	if err := db.write(ctx); err != nil {
		return store.Message{}, err
	}
	defer db.mu.Unlock()
	m, ok := db.deleteMessage(deviceID, seq)
	if !ok {
		return store.Message{}, fmt.Errorf("memstore: ack %s/%d: %w", deviceID, seq, store.ErrNotFound)
	}
	if receipt != nil {
		db.pushUpstream(receipt)
	}
	return m, nil
}

// AckAsync implements store.Queues: Ack, done before it returns.
func (db *DB) AckAsync(ctx context.Context, deviceID string, seq uint64, receipt *store.Upstream) store.Write {
	_, err := db.Ack(ctx, deviceID, seq, receipt)
	return done{err}
}

// QueueLen implements store.Queues.
func (db *DB) QueueLen(deviceID string) (int, error) {
	if err := db.lock(); err != nil {
		return 0, err
	}
	defer db.mu.Unlock()
	if q := db.queues[deviceID]; q != nil {
		return len(q.msgs), nil
	}
	return 0, nil
}

// PushUpstream implements store.UpstreamQueues.
func (db *DB) PushUpstream(ctx context.Context, u *store.Upstream) error {
	return db.PushUpstreamAsync(ctx, u).Wait(ctx)
}

// PushUpstreamAsync implements store.UpstreamQueues.
func (db *DB) PushUpstreamAsync(ctx context.Context, u *store.Upstream) store.Write {
	if u.SenderID == "" {
		return done{fmt.Errorf("memstore: push upstream: empty sender id")}
	}
	if err := db.write(ctx); err != nil {
		return done{err}
	}
	defer db.mu.Unlock()
	db.pushUpstream(u)
	return done{}
}

func (db *DB) pushUpstream(u *store.Upstream) {
	q := db.upstream[u.SenderID]
	if q == nil {
		q = &upQueue{}
		db.upstream[u.SenderID] = q
	}
	q.next++
	u.Seq = q.next
	c := *u
	c.Payload = cloneBytes(u.Payload)
	q.recs = append(q.recs, c)
}

// PendingUpstream implements store.UpstreamQueues.
func (db *DB) PendingUpstream(senderID string, after uint64, limit int, nowMs int64) ([]store.Upstream, error) {
	if err := db.lock(); err != nil {
		return nil, err
	}
	defer db.mu.Unlock()
	var out []store.Upstream
	if q := db.upstream[senderID]; q != nil {
		for _, u := range q.recs {
			if u.Seq <= after || expired(u.Expires, nowMs) {
				continue
			}
			if limit > 0 && len(out) == limit {
				break
			}
			u.Payload = cloneBytes(u.Payload)
			out = append(out, u)
		}
	}
	return out, nil
}

// AckUpstream implements store.UpstreamQueues.
func (db *DB) AckUpstream(ctx context.Context, senderID string, seq uint64) error {
	if err := db.write(ctx); err != nil {
		return err
	}
	defer db.mu.Unlock()
	if !db.deleteUpstream(senderID, seq) {
		return fmt.Errorf("memstore: ack upstream %s/%d: %w", senderID, seq, store.ErrNotFound)
	}
	return nil
}

// AckUpstreamAsync implements store.UpstreamQueues: AckUpstream, done
// before it returns.
func (db *DB) AckUpstreamAsync(ctx context.Context, senderID string, seq uint64) store.Write {
	return done{db.AckUpstream(ctx, senderID, seq)}
}

func (db *DB) deleteUpstream(senderID string, seq uint64) bool {
	q := db.upstream[senderID]
	if q == nil {
		return false
	}
	i := slices.IndexFunc(q.recs, func(u store.Upstream) bool { return u.Seq == seq })
	if i < 0 {
		return false
	}
	q.recs = slices.Delete(q.recs, i, i+1)
	return true
}

// UpstreamUsage implements store.UpstreamQueues. Bytes counts message id
// and payload, this backend's record size.
func (db *DB) UpstreamUsage(senderID string) store.QueueUsage {
	db.mu.Lock()
	defer db.mu.Unlock()
	var u store.QueueUsage
	if q := db.upstream[senderID]; q != nil {
		for _, r := range q.recs {
			u.Messages++
			u.Bytes += int64(len(r.MessageID) + len(r.Payload))
		}
	}
	return u
}

// Sweep implements store.Sweeper, in one call.
func (db *DB) Sweep(ctx context.Context, nowMs int64) (store.SweepStats, error) {
	if err := db.write(ctx); err != nil {
		return store.SweepStats{}, err
	}
	defer db.mu.Unlock()
	var st store.SweepStats
	dead := func(expires int64) bool { return expires > 0 && expires < nowMs }
	for dev, q := range db.queues {
		for _, seq := range seqsOf(q.msgs, func(m *store.Message) bool { return dead(m.Expires) }) {
			db.deleteMessage(dev, seq)
			st.Messages++
		}
	}
	for sender, q := range db.upstream {
		for _, u := range slices.Clone(q.recs) {
			if dead(u.Expires) {
				db.deleteUpstream(sender, u.Seq)
				st.Upstream++
			}
		}
	}
	for k, until := range db.dedup {
		if until < nowMs {
			delete(db.dedup, k)
			st.Dedup++
		}
	}
	return st, nil
}
