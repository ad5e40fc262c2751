package bolt

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"go.etcd.io/bbolt"

	"github.com/ccsd/ccsd/store"
)

// deletedMessagesKey is the collapse key of the message Overflow renders.
// It holds a NUL byte so that it reads as no sender's own collapse key.
const deletedMessagesKey = "\x00deleted_messages"

// expired reports whether a record with the given expiry time is dead at
// nowMs. Expires <= 0 means the record never expires.
func expired(expires, nowMs int64) bool { return expires > 0 && nowMs > expires }

func seqOf(k []byte) uint64 { return binary.BigEndian.Uint64(k) }

// Enqueue writes every message of e in one commit and returns after it is
// fsynced. If (SenderID, MessageID) has an unexpired dedup record it returns
// ErrDuplicate and writes nothing. A message with a CollapseKey first
// deletes the queued message with the same (RegID, CollapseKey): only the
// newest survives. Then the dedup record is written, to live until
// DedupUntil. Enqueue does not check registrations: the caller does.
func (db *DB) Enqueue(ctx context.Context, e *store.Enqueue) error {
	return db.EnqueueAsync(ctx, e).Wait(ctx)
}

// EnqueueAsync is Enqueue without the wait: it hands e to the committer and
// returns. Enqueues submitted one after another by one goroutine commit in
// that order, so a connection that pipelines messages keeps their order
// without waiting for each fsync. e must not change until Wait returns.
func (db *DB) EnqueueAsync(ctx context.Context, e *store.Enqueue) store.Write {
	w := &write{label: "enqueue " + e.SenderID + "/" + e.MessageID}
	if e.MessageID == "" && len(e.Messages) == 0 && e.Upstream == nil {
		// A barrier (store/doc.go): answered once every write submitted
		// before it is durable, in a batch of its own kind costing no
		// commit, so a device login's barrier costs no fsync.
		w.o, w.err = db.submit(ctx, nil)
		return w
	}
	if w.err = checkEnqueue(e); w.err != nil {
		return w
	}
	var dk []byte
	if e.MessageID != "" {
		dk = compositeKey(e.SenderID, e.MessageID)
	}
	vals := make([][]byte, len(e.Messages))
	for i := range e.Messages {
		vals[i] = encodeMessage(&e.Messages[i]) // outside the commit: it runs once
	}
	var uv []byte
	if e.Upstream != nil {
		uv = encodeUpstream(e.Upstream)
	}
	now := db.opts.Now().UnixMilli()
	w.o, w.err = db.submit(ctx, func(tx *bbolt.Tx) error {
		if dk != nil {
			if err := claimDedup(tx, dk, e, now); err != nil {
				return err
			}
		}
		if err := putCopies(tx, e, vals); err != nil {
			return err
		}
		if e.Upstream != nil {
			if err := pushUpstream(tx, e.Upstream, uv); err != nil {
				return err
			}
		}
		if dk != nil && e.DedupUntil >= now {
			return recordDedup(tx, dk, e)
		}
		return nil
	})
	return w
}

// checkEnqueue refuses an Enqueue the write could not apply.
func checkEnqueue(e *store.Enqueue) error {
	if e.Upstream != nil && e.Upstream.SenderID == "" {
		return fmt.Errorf("upstream copy has no sender id")
	}
	for i := range e.Messages {
		if e.Messages[i].DeviceID == "" {
			return fmt.Errorf("message %d has no device id", i)
		}
		if e.Messages[i].MaxQueued > 0 && e.Overflow == nil {
			return fmt.Errorf("message %d has a MaxQueued but the enqueue no Overflow", i)
		}
	}
	return nil
}

// claimDedup fails with ErrDuplicate while the dedup record dk of an
// earlier message is live; a stale one the sweeper has not reached yet is
// deleted with its expiry entry, to be replaced.
func claimDedup(tx *bbolt.Tx, dk []byte, e *store.Enqueue, now int64) error {
	dedup := tx.Bucket(bucketDedup)
	v := dedup.Get(dk)
	if len(v) != 8 {
		return nil
	}
	until := int64(binary.BigEndian.Uint64(v))
	if until >= now {
		return clean(store.ErrDuplicate)
	}
	if err := tx.Bucket(bucketExpiry).Delete(expiryKey(until, kindDedup, e.SenderID, 0, e.MessageID)); err != nil {
		return err
	}
	return dedup.Delete(dk)
}

// putCopies appends each copy (encoded in vals) to its device's queue, or
// lets the registration's queue bound discard it (Enqueue.Overflow).
func putCopies(tx *bbolt.Tx, e *store.Enqueue, vals [][]byte) error {
	e.Discarded, e.Evicted = 0, 0
	queues := tx.Bucket(bucketQueues)
	var q *bbolt.Bucket
	var qdev string
	for i := range e.Messages {
		m := &e.Messages[i]
		m.Seq = 0
		if q == nil || qdev != m.DeviceID {
			var err error
			if q, err = queues.CreateBucketIfNotExists([]byte(m.DeviceID)); err != nil {
				return fmt.Errorf("queue %s: %w", m.DeviceID, err)
			}
			appending(q)
			qdev = m.DeviceID
		}
		if m.CollapseKey == "" && m.MaxQueued > 0 && regQueued(tx, m.RegID) >= m.MaxQueued {
			n, err := overflow(tx, q, e, m)
			if err != nil {
				return err
			}
			e.Discarded += n + 1
			continue
		}
		n, err := evictCollapsible(tx, m)
		if err != nil {
			return err
		}
		e.Evicted += n
		if err := putMessage(tx, q, m, vals[i]); err != nil {
			return err
		}
	}
	return nil
}

// recordDedup remembers the message id until e.DedupUntil.
func recordDedup(tx *bbolt.Tx, dk []byte, e *store.Enqueue) error {
	if err := tx.Bucket(bucketDedup).Put(dk, binary.BigEndian.AppendUint64(nil, uint64(e.DedupUntil))); err != nil {
		return err
	}
	return appending(tx.Bucket(bucketExpiry)).Put(expiryKey(e.DedupUntil, kindDedup, e.SenderID, 0, e.MessageID), nil)
}

// putMessage appends m (encoded as val) to its device's queue q, with its
// expiry and collapse index entries (collapse, regcollapse), and sets m.Seq. A collapse key first
// deletes the queued message holding it; a message without one is counted
// for its registration.
func putMessage(tx *bbolt.Tx, q *bbolt.Bucket, m *store.Message, val []byte) error {
	collapse := tx.Bucket(bucketCollapse)
	var ck []byte
	if m.CollapseKey != "" {
		ck = compositeKey(m.RegID, m.CollapseKey)
		if old := collapse.Get(ck); old != nil {
			parts, rest, ok := splitParts(old, 1)
			if ok && len(rest) == 8 {
				err := dropMessage(tx, parts[0], seqOf(rest))
				if err != nil && !errors.Is(err, store.ErrNotFound) {
					return err
				}
			}
		}
	}
	seq, err := q.NextSequence()
	if err != nil {
		return err
	}
	m.Seq = seq
	if err := q.Put(seqKey(seq), val); err != nil {
		return err
	}
	if err := indexLane(tx, m); err != nil {
		return err
	}
	if m.Expires > 0 {
		if err := noteExpiry(tx, m.DeviceID, m.Expires); err != nil {
			return err
		}
	}
	if ck != nil {
		cv := binary.BigEndian.AppendUint64(appendPart(nil, m.DeviceID), seq)
		if err := collapse.Put(ck, cv); err != nil {
			return err
		}
		return indexCollapsible(tx, m)
	}
	return addRegQueued(tx, m.RegID, 1)
}

// overflow handles message m that found its registration's queue at
// m.MaxQueued: it deletes every queued message of that
// registration without a collapse key, returning how many, and queues
// e.Overflow's message in their place (replacing an earlier one). m itself
// is not stored.
func overflow(tx *bbolt.Tx, q *bbolt.Bucket, e *store.Enqueue, m *store.Message) (int, error) {
	var doomed []uint64
	c := q.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		reg, ck, err := messageKeys(v)
		if err != nil {
			return 0, fmt.Errorf("message %s/%x: %w", m.DeviceID, k, err)
		}
		if len(ck) == 0 && string(reg) == m.RegID {
			doomed = append(doomed, seqOf(k))
		}
	}
	for _, seq := range doomed {
		if err := dropMessage(tx, m.DeviceID, seq); err != nil {
			return 0, err
		}
	}
	d := e.Overflow(m)
	d.DeviceID, d.RegID, d.SenderID, d.CollapseKey = m.DeviceID, m.RegID, m.SenderID, deletedMessagesKey
	if err := putMessage(tx, q, &d, encodeMessage(&d)); err != nil {
		return 0, err
	}
	return len(doomed), nil
}

// deleteMessage removes one queued message with its expiry and collapse
// index entries and returns it. It returns ErrNotFound, having written
// nothing, if the message is not queued.
func deleteMessage(tx *bbolt.Tx, deviceID string, seq uint64) (store.Message, error) {
	return removeMessage(tx, deviceID, seq, true)
}

// dropMessage is deleteMessage for the callers that do not need the
// message: it reads only the fields its index entries need, decoding (and
// copying) nothing else.
func dropMessage(tx *bbolt.Tx, deviceID string, seq uint64) error {
	_, err := removeMessage(tx, deviceID, seq, false)
	return err
}

// removeMessage is deleteMessage, returning the message only if want.
func removeMessage(tx *bbolt.Tx, deviceID string, seq uint64, want bool) (store.Message, error) {
	q := tx.Bucket(bucketQueues).Bucket([]byte(deviceID))
	if q == nil {
		return store.Message{}, store.ErrNotFound
	}
	k := seqKey(seq)
	v := q.Get(k)
	if v == nil {
		return store.Message{}, store.ErrNotFound
	}
	mv, ok := viewMessage(v)
	if !ok {
		return store.Message{}, fmt.Errorf("message %s/%d: %w", deviceID, seq, errCorrupt)
	}
	// The fields are copied before the delete: v is bbolt's memory.
	var m store.Message
	if want {
		m = mv.message(deviceID, seq)
	} else {
		m = store.Message{Seq: seq, DeviceID: deviceID, RegID: string(mv.regID), CollapseKey: string(mv.collapseKey), Expires: mv.expires,
			High: mv.flags&flagHigh != 0, DelayWhileIdle: mv.flags&flagIdle != 0}
	}
	if err := q.Delete(k); err != nil {
		return store.Message{}, err
	}
	return m, unindexMessage(tx, &m, mv.v1)
}

// unindexMessage deletes the index entries of m, just deleted from its
// queue: its registration's count or its collapse entries, and the expiry
// entry a version 1 record (v1) has (a version 2 record has none: its
// device's bound stays valid, see qexpiry.go).
func unindexMessage(tx *bbolt.Tx, m *store.Message, v1 bool) error {
	if err := unindexLane(tx, m); err != nil {
		return err
	}
	if m.CollapseKey == "" {
		if err := addRegQueued(tx, m.RegID, -1); err != nil {
			return err
		}
	}
	if v1 && m.Expires > 0 {
		if err := tx.Bucket(bucketExpiry).Delete(expiryKey(m.Expires, kindMessage, m.DeviceID, m.Seq, "")); err != nil {
			return err
		}
	}
	if m.CollapseKey == "" {
		return nil
	}
	if err := unindexCollapsible(tx, m.RegID, m.Seq); err != nil {
		return err
	}
	collapse := tx.Bucket(bucketCollapse)
	ck := compositeKey(m.RegID, m.CollapseKey)
	if cur := collapse.Get(ck); cur != nil {
		parts, rest, ok := splitParts(cur, 1)
		if !ok || (parts[0] == m.DeviceID && len(rest) == 8 && seqOf(rest) == m.Seq) {
			return collapse.Delete(ck)
		}
	}
	return nil
}

// Pending returns up to limit messages queued for deviceID with Seq > after,
// in order, skipping those expired at nowMs. limit <= 0 means no limit. An
// unknown device has no messages.
func (db *DB) Pending(deviceID string, after uint64, limit int, nowMs int64) ([]store.Message, error) {
	var out []store.Message
	if after == math.MaxUint64 {
		return nil, nil
	}
	err := db.view(func(tx *bbolt.Tx) error {
		q := tx.Bucket(bucketQueues).Bucket([]byte(deviceID))
		if q == nil {
			return nil
		}
		c := q.Cursor()
		for k, v := c.Seek(seqKey(after + 1)); k != nil; k, v = c.Next() {
			if len(k) != 8 {
				continue
			}
			mv, ok := viewMessage(v)
			if !ok {
				return fmt.Errorf("seq %d: %w", seqOf(k), errCorrupt)
			}
			if expired(mv.expires, nowMs) {
				continue // skipped before anything is copied
			}
			if out == nil {
				out = make([]store.Message, 0, pendingCap(limit))
			}
			out = append(out, mv.message(deviceID, seqOf(k)))
			if limit > 0 && len(out) >= limit {
				break
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: pending %s: %w", deviceID, err)
	}
	return out, nil
}

// pendingCap is the first capacity of Pending's result: the limit (a
// session's window) when small, so a full read allocates its slice once.
func pendingCap(limit int) int {
	if limit > 0 && limit <= 128 {
		return limit
	}
	return 16
}

// Ack deletes message seq from deviceID's queue and returns it, or returns
// ErrNotFound if it is gone. If receipt is not nil it is appended to
// receipt.SenderID's upstream queue in the same commit (receipt.Seq is
// set), so a receipt is never lost and never written for a message that was
// already gone.
func (db *DB) Ack(ctx context.Context, deviceID string, seq uint64, receipt *store.Upstream) (store.Message, error) {
	if receipt != nil && receipt.SenderID == "" {
		return store.Message{}, fmt.Errorf("store: ack %s/%d: receipt has no sender id", deviceID, seq)
	}
	var rv []byte
	if receipt != nil {
		rv = encodeUpstream(receipt)
	}
	var m store.Message
	err := db.update(ctx, func(tx *bbolt.Tx) error {
		var err error
		m, err = deleteMessage(tx, deviceID, seq)
		if errors.Is(err, store.ErrNotFound) {
			return clean(err)
		}
		if err != nil {
			return err
		}
		if receipt != nil {
			return pushUpstream(tx, receipt, rv)
		}
		return nil
	})
	if err != nil {
		return store.Message{}, fmt.Errorf("store: ack %s/%d: %w", deviceID, seq, err)
	}
	return m, nil
}

// QueueLen returns the number of messages queued for deviceID, expired ones
// not yet swept included. It walks the queue's keys without decoding them.
func (db *DB) QueueLen(deviceID string) (int, error) {
	n := 0
	err := db.view(func(tx *bbolt.Tx) error {
		q := tx.Bucket(bucketQueues).Bucket([]byte(deviceID))
		if q == nil {
			return nil
		}
		c := q.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("store: queue length %s: %w", deviceID, err)
	}
	return n, nil
}
