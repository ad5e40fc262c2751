package bolt

import (
	"encoding/binary"
	"fmt"

	"go.etcd.io/bbolt"
)

// The regqueued bucket counts, per registration, its queued messages
// without a collapse key: what Message.MaxQueued bounds. It is
// written in the same transaction as every put and delete of such a
// message (putMessage, deleteMessage), so the count is as durable and
// exact as the queue, costs no commit of its own, and needs no walk of
// the queue at start.

// regQueued returns regID's count.
func regQueued(tx *bbolt.Tx, regID string) int {
	v := tx.Bucket(bucketRegQueued).Get([]byte(regID))
	if len(v) != 8 {
		return 0
	}
	return int(binary.BigEndian.Uint64(v))
}

// addRegQueued changes regID's count by delta. A count that reaches zero
// is deleted, so only registrations with messages queued have an entry.
func addRegQueued(tx *bbolt.Tx, regID string, delta int) error {
	n := regQueued(tx, regID) + delta
	b := tx.Bucket(bucketRegQueued)
	if n <= 0 {
		return b.Delete([]byte(regID))
	}
	return b.Put([]byte(regID), binary.BigEndian.AppendUint64(make([]byte, 0, 8), uint64(n)))
}

// countRegQueued builds the counts of a database written before they
// existed, once: it walks every device queue, reading only each message's
// registration and collapse key, then marks the meta bucket so later
// opens skip it.
func countRegQueued(tx *bbolt.Tx) error {
	meta := tx.Bucket(bucketMeta)
	if meta.Get(keyRegQueued) != nil {
		return nil
	}
	queues := tx.Bucket(bucketQueues)
	counts := make(map[string]int)
	err := queues.ForEachBucket(func(dev []byte) error {
		c := queues.Bucket(dev).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			reg, ck, err := messageKeys(v)
			if err != nil {
				return fmt.Errorf("message %s/%x: %w", dev, k, err)
			}
			if len(ck) == 0 {
				counts[string(reg)]++
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for reg, n := range counts {
		if err := addRegQueued(tx, reg, n); err != nil {
			return err
		}
	}
	return meta.Put(keyRegQueued, []byte{1})
}
