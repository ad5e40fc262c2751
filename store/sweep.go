package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"go.etcd.io/bbolt"
)

// sweepLimit bounds the expiry index entries one Sweep call handles, so one
// sweep never holds the committer (and every writer behind it) for long.
var sweepLimit = 10000

// SweepStats counts what one Sweep call deleted.
type SweepStats struct {
	Messages int  // expired device messages
	Upstream int  // expired upstream messages and receipts
	Dedup    int  // expired dedup records
	More     bool // the call stopped at its work bound: call Sweep again
}

// Sweep deletes device messages, upstream messages and dedup records whose
// expiry time is before nowMs, with their index entries. It walks the
// time-ordered expiry index from its start and stops at the first entry not
// yet expired, so it touches only what expired, and handles at most 10,000
// entries per call (More reports that some are left). It runs as one write
// through the committer.
func (db *DB) Sweep(ctx context.Context, nowMs int64) (SweepStats, error) {
	var st SweepStats
	err := db.update(ctx, func(tx *bbolt.Tx) error {
		st = SweepStats{}
		expiry := tx.Bucket(bucketExpiry)
		var keys [][]byte
		c := expiry.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			if len(k) >= 8 && int64(binary.BigEndian.Uint64(k)) >= nowMs {
				break
			}
			if len(keys) == sweepLimit {
				st.More = true
				break
			}
			keys = append(keys, bytes.Clone(k))
		}
		for _, k := range keys {
			n, err := sweepEntry(tx, k)
			if err != nil {
				return fmt.Errorf("expiry entry %x: %w", k, err)
			}
			switch n {
			case kindMessage:
				st.Messages++
			case kindUpstream:
				st.Upstream++
			case kindDedup:
				st.Dedup++
			}
			// Usually already gone with its record; a dangling or malformed
			// entry is dropped here.
			if err := expiry.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return SweepStats{}, fmt.Errorf("store: sweep: %w", err)
	}
	return st, nil
}

// sweepEntry deletes the record an expiry key points to and returns its
// kind, or 0 if the record was already gone or the key is malformed.
func sweepEntry(tx *bbolt.Tx, k []byte) (byte, error) {
	if len(k) < 9 {
		return 0, nil
	}
	exp := int64(binary.BigEndian.Uint64(k))
	kind := k[8]
	parts, tail, ok := splitParts(k[9:], 1)
	if !ok {
		return 0, nil
	}
	id := parts[0]
	switch kind {
	case kindMessage, kindUpstream:
		if len(tail) != 8 {
			return 0, nil
		}
		var err error
		if kind == kindMessage {
			_, err = deleteMessage(tx, id, seqOf(tail))
		} else {
			err = deleteUpstream(tx, id, seqOf(tail))
		}
		if errors.Is(err, ErrNotFound) {
			return 0, nil
		}
		return kind, err
	case kindDedup:
		mid, rest, ok := splitParts(tail, 1)
		if !ok || len(rest) != 0 {
			return 0, nil
		}
		dedup := tx.Bucket(bucketDedup)
		dk := compositeKey(id, mid[0])
		// Delete only the record this entry was written for; a renewed
		// record has its own, later, entry.
		if v := dedup.Get(dk); len(v) == 8 && int64(binary.BigEndian.Uint64(v)) == exp {
			return kindDedup, dedup.Delete(dk)
		}
		return 0, nil
	}
	return 0, nil
}
