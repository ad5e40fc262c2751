package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"go.etcd.io/bbolt"

	"github.com/ccsd/ccsd/store"
)

// Topic buckets (see doc.go): topicsubs is the subscriber index a fan-out
// reads by prefix, regtopics the same pairs by registration for
// Subscriptions, the topic bound and unregister.
var (
	bucketTopicSubs = []byte("topicsubs")
	bucketRegTopics = []byte("regtopics")
	bucketTopicJobs = []byte("topicjobs")
)

// topicPrefix is part(sender) part(topic): every subscriber key of the
// topic starts with it, followed by the raw registration id.
func topicPrefix(senderID, topic string) []byte { return compositeKey(senderID, topic) }

// regTopicKey is part(regID) topic.
func regTopicKey(regID, topic string) []byte { return append(appendPart(nil, regID), topic...) }

// liveRegOf reads regID's record and reports whether it is a live
// registration of senderID.
func liveRegOf(tx *bbolt.Tx, senderID, regID string) (bool, error) {
	v := tx.Bucket(bucketRegs).Get([]byte(regID))
	if v == nil {
		return false, nil
	}
	rec, err := decodeReg(v)
	if err != nil {
		return false, fmt.Errorf("registration %s: %w", regID, err)
	}
	return !rec.Unregistered && rec.SenderID == senderID, nil
}

// countTopics counts regID's subscriptions, stopping at max.
func countTopics(tx *bbolt.Tx, regID string, max int) int {
	prefix := appendPart(nil, regID)
	c := tx.Bucket(bucketRegTopics).Cursor()
	n := 0
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && n < max; k, _ = c.Next() {
		n++
	}
	return n
}

// Subscribe subscribes each registration in one commit (see store.Topics).
func (db *DB) Subscribe(ctx context.Context, senderID, topic string, regIDs []string, max int) ([]error, error) {
	errs := make([]error, len(regIDs))
	now := binary.BigEndian.AppendUint64(nil, uint64(db.opts.Now().UnixMilli()))
	prefix := topicPrefix(senderID, topic)
	err := db.update(ctx, func(tx *bbolt.Tx) error {
		subs, byReg := tx.Bucket(bucketTopicSubs), tx.Bucket(bucketRegTopics)
		for i, id := range regIDs {
			errs[i] = nil
			ok, err := liveRegOf(tx, senderID, id)
			if err != nil {
				return err
			}
			rk := regTopicKey(id, topic)
			switch {
			case !ok:
				errs[i] = store.ErrNotFound
				continue
			case byReg.Get(rk) != nil:
				continue // idempotent: the first add date stays
			case max > 0 && countTopics(tx, id, max) >= max:
				errs[i] = store.ErrTooManyTopics
				continue
			}
			if err := byReg.Put(rk, now); err != nil {
				return err
			}
			if err := subs.Put(append(bytes.Clone(prefix), id...), now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: subscribe %s/%s: %w", senderID, topic, err)
	}
	return errs, nil
}

// Unsubscribe removes each registration's subscription in one commit.
func (db *DB) Unsubscribe(ctx context.Context, senderID, topic string, regIDs []string) ([]error, error) {
	errs := make([]error, len(regIDs))
	prefix := topicPrefix(senderID, topic)
	err := db.update(ctx, func(tx *bbolt.Tx) error {
		for i, id := range regIDs {
			errs[i] = nil
			ok, err := liveRegOf(tx, senderID, id)
			if err != nil {
				return err
			}
			if !ok {
				errs[i] = store.ErrNotFound
				continue
			}
			if err := tx.Bucket(bucketRegTopics).Delete(regTopicKey(id, topic)); err != nil {
				return err
			}
			if err := tx.Bucket(bucketTopicSubs).Delete(append(bytes.Clone(prefix), id...)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: unsubscribe %s/%s: %w", senderID, topic, err)
	}
	return errs, nil
}

// deleteSubscriptions removes every subscription of a registration of
// senderID (unregister, device sweep), in the caller's transaction.
func deleteSubscriptions(tx *bbolt.Tx, senderID, regID string) error {
	prefix := appendPart(nil, regID)
	byReg := tx.Bucket(bucketRegTopics)
	var topics [][]byte
	c := byReg.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		topics = append(topics, bytes.Clone(k))
	}
	for _, k := range topics {
		if err := byReg.Delete(k); err != nil {
			return err
		}
		sk := append(topicPrefix(senderID, string(k[len(prefix):])), regID...)
		if err := tx.Bucket(bucketTopicSubs).Delete(sk); err != nil {
			return err
		}
	}
	return nil
}

// Subscriptions lists regID's topics in name order.
func (db *DB) Subscriptions(regID string) ([]store.Subscription, error) {
	var out []store.Subscription
	prefix := appendPart(nil, regID)
	err := db.view(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketRegTopics).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if len(v) != 8 {
				return fmt.Errorf("subscription %x: %w", k, errCorrupt)
			}
			out = append(out, store.Subscription{Topic: string(k[len(prefix):]), Added: time.UnixMilli(int64(binary.BigEndian.Uint64(v)))})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: subscriptions of %s: %w", regID, err)
	}
	return out, nil
}

// Subscribers reads one page of a topic's registrations after the cursor,
// with their records, in one read transaction: a prefix range of
// topicsubs, so a page costs the same however large the topic.
func (db *DB) Subscribers(senderID, topic, after string, limit int) ([]store.Registration, error) {
	var out []store.Registration
	prefix := topicPrefix(senderID, topic)
	err := db.view(func(tx *bbolt.Tx) error {
		regs := tx.Bucket(bucketRegs)
		c := tx.Bucket(bucketTopicSubs).Cursor()
		k, _ := c.Seek(append(bytes.Clone(prefix), after...))
		if k != nil && after != "" && string(k[len(prefix):]) == after {
			k, _ = c.Next()
		}
		for ; k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			id := k[len(prefix):]
			v := regs.Get(id)
			if v == nil {
				continue // not reached: unregister deletes the subscription
			}
			rec, err := decodeReg(v)
			if err != nil {
				return fmt.Errorf("registration %s: %w", id, err)
			}
			if rec.Unregistered {
				continue
			}
			out = append(out, rec.Registration)
			if limit > 0 && len(out) >= limit {
				break
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: subscribers of %s/%s: %w", senderID, topic, err)
	}
	return out, nil
}

// Memberships reads, in one transaction, which of topics each
// registration holds: one regtopics Get per pair.
func (db *DB) Memberships(regIDs []string, topics []string) ([]uint32, error) {
	if len(topics) > 32 {
		return nil, fmt.Errorf("store: memberships: %d topics, at most 32", len(topics))
	}
	masks := make([]uint32, len(regIDs))
	err := db.view(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketRegTopics)
		for k, id := range regIDs {
			for i, t := range topics {
				if b.Get(regTopicKey(id, t)) != nil {
					masks[k] |= 1 << i
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: memberships: %w", err)
	}
	return masks, nil
}

func encodeTopicJob(j *store.TopicJob) []byte {
	e := newEnc(len(j.SenderID) + len(j.Topic) + len(j.MessageID) + len(j.Cursor) + len(j.Body) + 32)
	e.str(j.SenderID)
	e.str(j.Topic)
	e.str(j.MessageID)
	e.str(j.Cursor)
	e.time(j.Created)
	e.bytes(j.Body)
	e.str(j.Condition)
	e.i64(int64(j.Step))
	return e.b
}

func decodeTopicJob(id uint64, b []byte) (store.TopicJob, error) {
	d := newDec(b)
	j := store.TopicJob{ID: id, SenderID: d.str(), Topic: d.str(), MessageID: d.str(), Cursor: d.str(), Created: d.time(), Body: d.bytes()}
	j.Condition, j.Step = d.str(), int(d.i64())
	if d.err != nil {
		return store.TopicJob{}, d.err
	}
	return j, nil
}

// PutTopicJob stores j under a new id from the bucket's sequence.
func (db *DB) PutTopicJob(ctx context.Context, j *store.TopicJob) error {
	var dk []byte
	de := &store.Enqueue{SenderID: j.SenderID, MessageID: j.MessageID, DedupUntil: j.DedupUntil}
	if j.MessageID != "" {
		dk = compositeKey(j.SenderID, j.MessageID)
	}
	now := db.opts.Now().UnixMilli()
	err := db.update(ctx, func(tx *bbolt.Tx) error {
		if dk != nil {
			if err := claimDedup(tx, dk, de, now); err != nil {
				return err
			}
		}
		b := tx.Bucket(bucketTopicJobs)
		id, err := b.NextSequence()
		if err != nil {
			return err
		}
		j.ID = id
		if err := b.Put(seqKey(id), encodeTopicJob(j)); err != nil {
			return err
		}
		if dk != nil && de.DedupUntil >= now {
			return recordDedup(tx, dk, de)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: put topic job %s/%s: %w", j.SenderID, j.Topic, err)
	}
	return nil
}

// TopicJobs lists the stored jobs in id order.
func (db *DB) TopicJobs() ([]store.TopicJob, error) {
	var out []store.TopicJob
	err := db.view(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketTopicJobs).ForEach(func(k, v []byte) error {
			if len(k) != 8 {
				return nil
			}
			j, err := decodeTopicJob(seqOf(k), v)
			if err != nil {
				return fmt.Errorf("topic job %x: %w", k, err)
			}
			out = append(out, j)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store: topic jobs: %w", err)
	}
	return out, nil
}

// AdvanceTopicJob queues e's copies and moves (or deletes) the job in one
// commit.
func (db *DB) AdvanceTopicJob(ctx context.Context, jobID uint64, step int, cursor string, done bool, e *store.Enqueue) error {
	if e == nil {
		e = &store.Enqueue{}
	}
	if err := checkEnqueue(e); err != nil {
		return fmt.Errorf("store: advance topic job %d: %w", jobID, err)
	}
	vals := make([][]byte, len(e.Messages))
	for i := range e.Messages {
		vals[i] = encodeMessage(&e.Messages[i])
	}
	err := db.update(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketTopicJobs)
		k := seqKey(jobID)
		v := b.Get(k)
		if v == nil {
			return clean(store.ErrNotFound)
		}
		j, err := decodeTopicJob(jobID, v)
		if err != nil {
			return clean(fmt.Errorf("topic job %d: %w", jobID, err))
		}
		if err := putCopies(tx, e, vals); err != nil {
			return err
		}
		if done {
			return b.Delete(k)
		}
		j.Step, j.Cursor = step, cursor
		return b.Put(k, encodeTopicJob(&j))
	})
	if err != nil {
		return fmt.Errorf("store: advance topic job %d: %w", jobID, err)
	}
	return nil
}
