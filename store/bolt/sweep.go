package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/bbolt"

	"github.com/ccsd/ccsd/store"
)

// sweepLimit bounds the expiry index entries one Sweep call handles, so one
// sweep never holds the committer (and every writer behind it) for long.
var sweepLimit = 10000

// Sweep deletes device messages, upstream messages and dedup records whose
// expiry time is before nowMs, with their index entries. It walks the
// time-ordered expiry index from its start and stops at the first entry not
// yet expired, so it touches only what expired, then the devices whose
// expiry bound has passed, walking their queues (qexpiry.go). It handles at
// most 10,000 index entries and queued records per call (More reports that
// some are left). It runs as one write through the committer.
func (db *DB) Sweep(ctx context.Context, nowMs int64) (store.SweepStats, error) {
	var st store.SweepStats
	err := db.update(ctx, func(tx *bbolt.Tx) error {
		st = store.SweepStats{}
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
		if !st.More {
			// The queues' bounds share what the index left of the budget.
			if _, err := sweepQueues(tx, nowMs, max(sweepLimit-len(keys), 1), &st); err != nil {
				return fmt.Errorf("queue expiry: %w", err)
			}
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
		return store.SweepStats{}, fmt.Errorf("store: sweep: %w", err)
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
			err = dropMessage(tx, id, seqOf(tail))
		} else {
			err = deleteUpstream(tx, id, seqOf(tail))
		}
		if errors.Is(err, store.ErrNotFound) {
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

// deviceSweepLimit bounds the devices one SweepDevices call judges and
// deviceSweepWork the registrations and messages it deletes (checked
// between devices), so a device sweep is as short a commit as Sweep's.
var (
	deviceSweepLimit = 1000
	deviceSweepWork  = 10000
)

// SweepDevices deletes every device created before createdBefore that never
// logged in or has no live registration, together with its live
// registrations and its queued messages. It walks the creation index from
// the oldest device and stops at the first one created at or after
// createdBefore, so it touches only devices old enough to judge. Each device
// is judged once: its index entry goes either way, so a device that passed
// (logged in, with an app) is never looked at again. Devices without an
// index entry (created before the index existed) are never judged. One call
// is one write through the committer and stops after 1,000 devices or
// 10,000 deleted records (More reports that some are left).
func (db *DB) SweepDevices(ctx context.Context, createdBefore time.Time) (store.DeviceSweepStats, error) {
	cutoff := createdBefore.UnixMilli()
	var st store.DeviceSweepStats
	err := db.update(ctx, func(tx *bbolt.Tx) error {
		st = store.DeviceSweepStats{}
		index := tx.Bucket(bucketDevCreated)
		var keys [][]byte
		c := index.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			if len(k) >= 8 && int64(binary.BigEndian.Uint64(k)) >= cutoff {
				break
			}
			if len(keys) == deviceSweepLimit {
				st.More = true
				break
			}
			keys = append(keys, bytes.Clone(k))
		}
		for _, k := range keys {
			if st.Registrations+st.Messages >= deviceSweepWork {
				st.More = true
				break
			}
			if err := sweepDevice(tx, k, &st); err != nil {
				return fmt.Errorf("device index entry %x: %w", k, err)
			}
			if err := index.Delete(k); err != nil {
				return err
			}
			st.Checked++
		}
		return nil
	})
	if err != nil {
		return store.DeviceSweepStats{}, fmt.Errorf("store: sweep devices: %w", err)
	}
	return st, nil
}

// sweepDevice judges the device a creation index key names and deletes it
// if it never logged in or has no live registration. A malformed key, a
// device already gone, or a record that does not decode (it cannot log in
// anyway, and deleting what cannot be read is not the sweep's call) leave
// nothing to do.
func sweepDevice(tx *bbolt.Tx, k []byte, st *store.DeviceSweepStats) error {
	if len(k) < 8 {
		return nil
	}
	parts, rest, ok := splitParts(k[8:], 1)
	if !ok || len(rest) != 0 {
		return nil
	}
	id := parts[0]
	v := tx.Bucket(bucketDevices).Get([]byte(id))
	if v == nil {
		return nil
	}
	d, err := decodeDevice(v)
	if err != nil {
		return nil
	}
	if d.LoggedIn && countLiveRegistrations(tx, id, 1) > 0 {
		return nil
	}
	regs, msgs, err := deleteDevice(tx, id)
	if err != nil {
		return fmt.Errorf("delete device %s: %w", id, err)
	}
	st.Devices++
	st.Registrations += regs
	st.Messages += msgs
	return nil
}
