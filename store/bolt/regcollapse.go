package bolt

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"go.etcd.io/bbolt"

	"github.com/ccsd/ccsd/store"
)

// The regcollapse bucket lists, per registration and in enqueue order, its
// queued messages with a collapse key: part(regID) be64(seq) → deviceID.
// It is what Message.MaxCollapseKeys bounds. Since the collapse bucket
// keeps one message per (registration, key), the entries under a
// registration's prefix are its distinct keys, and the first is the oldest.
// It is written in the transaction of every put and delete of such a
// message (putMessage, deleteMessage), like regqueued, so it needs no walk
// of the queue. The deleted_messages message's reserved key is not listed:
// it does not count toward the bound and is never evicted by it. With a
// bound the entries per registration stay at the bound; without one they
// are as many as the collapse entries, which the queue bounds already.

// collapsibleKey is regID's entry for the message seq.
func collapsibleKey(regID string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(appendPart(nil, regID), seq)
}

// indexCollapsible lists m, just queued with a collapse key, under its
// registration.
func indexCollapsible(tx *bbolt.Tx, m *store.Message) error {
	if m.CollapseKey == deletedMessagesKey {
		return nil
	}
	return tx.Bucket(bucketRegCollapse).Put(collapsibleKey(m.RegID, m.Seq), []byte(m.DeviceID))
}

// unindexCollapsible removes the entry of a deleted message with a
// collapse key.
func unindexCollapsible(tx *bbolt.Tx, regID string, seq uint64) error {
	return tx.Bucket(bucketRegCollapse).Delete(collapsibleKey(regID, seq))
}

// evictCollapsible makes room for m's collapse key under m.MaxCollapseKeys:
// if m's registration holds no message with that key and already holds
// MaxCollapseKeys keys, its oldest collapsible messages are deleted until
// one slot is free. It returns how many it deleted. It reads at most the
// registration's entries, which the bound keeps few.
func evictCollapsible(tx *bbolt.Tx, m *store.Message) (int, error) {
	bound := m.MaxCollapseKeys
	if bound <= 0 || m.CollapseKey == "" || m.CollapseKey == deletedMessagesKey {
		return 0, nil
	}
	if tx.Bucket(bucketCollapse).Get(compositeKey(m.RegID, m.CollapseKey)) != nil {
		return 0, nil // it replaces its own key's message: no new key
	}
	type entry struct {
		dev string
		seq uint64
	}
	var held []entry
	prefix := appendPart(nil, m.RegID)
	c := tx.Bucket(bucketRegCollapse).Cursor()
	// part(regID) is length-prefixed: every key it starts is regID's.
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		if len(k) == len(prefix)+8 {
			held = append(held, entry{string(v), seqOf(k[len(prefix):])})
		}
	}
	n := len(held) - bound + 1
	for i := 0; i < n; i++ {
		if err := dropMessage(tx, held[i].dev, held[i].seq); err != nil {
			return 0, fmt.Errorf("evict %s/%d: %w", held[i].dev, held[i].seq, err)
		}
	}
	return max(n, 0), nil
}

// buildRegCollapse lists, once, the collapsible messages of a database
// written before the regcollapse bucket existed, from the collapse index
// (one entry per queued message with a collapse key), then marks the meta
// bucket so later opens skip it.
func buildRegCollapse(tx *bbolt.Tx) error {
	meta := tx.Bucket(bucketMeta)
	if meta.Get(keyRegCollapse) != nil {
		return nil
	}
	idx := tx.Bucket(bucketRegCollapse)
	err := tx.Bucket(bucketCollapse).ForEach(func(k, v []byte) error {
		key, _, ok := splitParts(k, 2)
		where, rest, ok2 := splitParts(v, 1)
		if !ok || !ok2 || len(rest) != 8 || key[1] == deletedMessagesKey {
			return nil // not listed: a corrupt entry is not evicted, as Sweep drops it
		}
		return idx.Put(collapsibleKey(key[0], seqOf(rest)), []byte(where[0]))
	})
	if err != nil {
		return err
	}
	return meta.Put(keyRegCollapse, []byte{1})
}
