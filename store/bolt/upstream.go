package bolt

import (
	"context"
	"fmt"
	"math"

	"go.etcd.io/bbolt"

	"github.com/ccsd/ccsd/store"
)

// pushUpstream appends u (encoded as val) to its sender's queue inside tx
// and sets u.Seq.
func pushUpstream(tx *bbolt.Tx, u *store.Upstream, val []byte) error {
	b, err := tx.Bucket(bucketUpstream).CreateBucketIfNotExists([]byte(u.SenderID))
	if err != nil {
		return fmt.Errorf("upstream queue %s: %w", u.SenderID, err)
	}
	appending(b)
	seq, err := b.NextSequence()
	if err != nil {
		return err
	}
	u.Seq = seq
	if err := b.Put(seqKey(seq), val); err != nil {
		return err
	}
	countedOnCommit(tx, u.SenderID, 1, int64(len(val)))
	if u.Expires > 0 {
		return appending(tx.Bucket(bucketExpiry)).Put(expiryKey(u.Expires, kindUpstream, u.SenderID, seq, ""), nil)
	}
	return nil
}

// PushUpstream appends u to u.SenderID's upstream queue, sets u.Seq, and
// returns once it is durable.
func (db *DB) PushUpstream(ctx context.Context, u *store.Upstream) error {
	return db.PushUpstreamAsync(ctx, u).Wait(ctx)
}

// PushUpstreamAsync is PushUpstream without the wait. Pushes submitted one
// after another by one goroutine commit in that order, so a device that
// pipelines upstream messages keeps their order. u must not change until
// Wait returns.
func (db *DB) PushUpstreamAsync(ctx context.Context, u *store.Upstream) store.Write {
	w := &write{label: "push upstream " + u.SenderID + "/" + u.MessageID}
	if u.SenderID == "" {
		w.err = fmt.Errorf("empty sender id")
		return w
	}
	val := encodeUpstream(u)
	w.o, w.err = db.submit(ctx, func(tx *bbolt.Tx) error { return pushUpstream(tx, u, val) })
	return w
}

// PendingUpstream returns up to limit messages waiting for senderID with
// Seq > after, in order, skipping those expired at nowMs. limit <= 0 means
// no limit.
func (db *DB) PendingUpstream(senderID string, after uint64, limit int, nowMs int64) ([]store.Upstream, error) {
	var out []store.Upstream
	if after == math.MaxUint64 {
		return nil, nil
	}
	err := db.view(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketUpstream).Bucket([]byte(senderID))
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Seek(seqKey(after + 1)); k != nil; k, v = c.Next() {
			if len(k) != 8 {
				continue
			}
			u, err := decodeUpstream(senderID, seqOf(k), v)
			if err != nil {
				return fmt.Errorf("seq %d: %w", seqOf(k), err)
			}
			if expired(u.Expires, nowMs) {
				continue
			}
			out = append(out, u)
			if limit > 0 && len(out) >= limit {
				break
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: pending upstream %s: %w", senderID, err)
	}
	return out, nil
}

// deleteUpstream removes one upstream message and its expiry entry. It
// returns ErrNotFound, having written nothing, if it is gone.
func deleteUpstream(tx *bbolt.Tx, senderID string, seq uint64) error {
	b := tx.Bucket(bucketUpstream).Bucket([]byte(senderID))
	if b == nil {
		return store.ErrNotFound
	}
	k := seqKey(seq)
	v := b.Get(k)
	if v == nil {
		return store.ErrNotFound
	}
	u, err := decodeUpstream(senderID, seq, v)
	if err != nil {
		return fmt.Errorf("upstream %s/%d: %w", senderID, seq, err)
	}
	if err := b.Delete(k); err != nil {
		return err
	}
	countedOnCommit(tx, senderID, -1, -int64(len(v)))
	if u.Expires > 0 {
		return tx.Bucket(bucketExpiry).Delete(expiryKey(u.Expires, kindUpstream, senderID, seq, ""))
	}
	return nil
}

// AckUpstream deletes upstream message seq of senderID once the app server
// acked it. It returns ErrNotFound if the message is gone.
func (db *DB) AckUpstream(ctx context.Context, senderID string, seq uint64) error {
	err := db.update(ctx, func(tx *bbolt.Tx) error {
		err := deleteUpstream(tx, senderID, seq)
		if err == store.ErrNotFound {
			return clean(err)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("store: ack upstream %s/%d: %w", senderID, seq, err)
	}
	return nil
}
