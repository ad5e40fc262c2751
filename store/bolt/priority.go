package bolt

import (
	"encoding/binary"
	"fmt"

	"go.etcd.io/bbolt"

	"github.com/ccsd/ccsd/store"
)

// bucketLanes indexes the queued messages of the lanes other than
// LaneNormal: part(deviceID) | lane byte | be64(seq) → nothing. putMessage
// adds a message's entry and unindexMessage (every delete goes through it)
// removes it, so PendingLane reads a lane without walking the queue. The
// bucket is created by the first write that needs it: a database that
// never queued a high-priority or delay_while_idle message has none.
var bucketLanes = []byte("lanes")

// laneKey is the index key of message seq of deviceID in lane.
func laneKey(deviceID string, lane store.Lane, seq uint64) []byte {
	b := appendPart(make([]byte, 0, len(deviceID)+binary.MaxVarintLen32+9), deviceID)
	b = append(b, byte(lane))
	return binary.BigEndian.AppendUint64(b, seq)
}

// indexLane adds m (just put, Seq set) to its lane's index.
func indexLane(tx *bbolt.Tx, m *store.Message) error {
	lane := m.Lane()
	if lane == store.LaneNormal {
		return nil
	}
	b, err := tx.CreateBucketIfNotExists(bucketLanes)
	if err != nil {
		return fmt.Errorf("lanes: %w", err)
	}
	return b.Put(laneKey(m.DeviceID, lane, m.Seq), nil)
}

// unindexLane removes m (just deleted) from its lane's index.
func unindexLane(tx *bbolt.Tx, m *store.Message) error {
	lane := m.Lane()
	if lane == store.LaneNormal {
		return nil
	}
	b := tx.Bucket(bucketLanes)
	if b == nil {
		return nil
	}
	return b.Delete(laneKey(m.DeviceID, lane, m.Seq))
}

// PendingLane returns up to limit queued messages of deviceID in lane with
// Seq > after, in order, skipping those expired at nowMs; see
// store.Queues.
func (db *DB) PendingLane(deviceID string, lane store.Lane, after uint64, limit int, nowMs int64) ([]store.Message, error) {
	var out []store.Message
	if lane == store.LaneNormal || after == ^uint64(0) {
		return nil, nil
	}
	err := db.view(func(tx *bbolt.Tx) error {
		idx, q := tx.Bucket(bucketLanes), tx.Bucket(bucketQueues).Bucket([]byte(deviceID))
		if idx == nil || q == nil {
			return nil
		}
		start := laneKey(deviceID, lane, after+1)
		prefix := start[:len(start)-8]
		c := idx.Cursor()
		for k, _ := c.Seek(start); k != nil && len(k) == len(start) && string(k[:len(prefix)]) == string(prefix); k, _ = c.Next() {
			seq := seqOf(k[len(prefix):])
			v := q.Get(seqKey(seq))
			if v == nil {
				return fmt.Errorf("lane entry of seq %d has no message: %w", seq, errCorrupt)
			}
			mv, ok := viewMessage(v)
			if !ok {
				return fmt.Errorf("seq %d: %w", seq, errCorrupt)
			}
			if expired(mv.expires, nowMs) {
				continue
			}
			out = append(out, mv.message(deviceID, seq))
			if limit > 0 && len(out) >= limit {
				break
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: pending lane %d of %s: %w", lane, deviceID, err)
	}
	return out, nil
}
