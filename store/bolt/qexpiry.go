package bolt

import (
	"encoding/binary"

	"go.etcd.io/bbolt"

	"github.com/ccsd/ccsd/store"
)

// A queued message (record version 2) has no expiry index entry of its
// own. Each device holds instead one lower bound of its messages' expiry
// times:
//
//	qexpiry    be64(bound ms) part(deviceID) → empty, in time order
//	qexpirydev deviceID → be64(bound) [be64(resume seq) be64(min so far)]
//
// The invariant: every queued version 2 message with Expires > 0 has its
// device's entry, with bound <= Expires. An enqueue reads the device's
// bound and writes only when the message expires before it (messages with
// one TTL arrive in expiry order, so almost never); an ack or any other
// delete writes nothing, which leaves the bound valid (a lower bound stays
// one). Sweep takes the devices whose bound has passed, walks each one's
// queue (deleting what expired and computing the earliest expiry left,
// the new exact bound) and, when its budget ends inside a queue, stores
// where it stopped and the minimum so far in the device's value, so the
// next call resumes there. Compared with one expiry entry per message this
// saves a B+tree insert on every enqueue, a delete on every ack, and about
// 50 bytes of file per queued message; the cost is a sweep that reads
// queued records that have not expired, once per device whenever its bound
// passes. Version 1 records keep their per-message entries ('m' in the
// expiry index), which the deletes of such records still remove.

// qexpiryKey is the index key of deviceID's bound.
func qexpiryKey(bound int64, deviceID string) []byte {
	b := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(deviceID)+2), uint64(bound))
	return appendPart(b, deviceID)
}

// queueBound is what qexpirydev holds for a device: its bound, and where a
// sweep that ran out of budget stopped (resume > 0) with the earliest
// expiry it saw before that (low, 0 for none).
type queueBound struct {
	bound, low int64
	resume     uint64
}

// readBound returns deviceID's bound (ok false if it has none).
func readBound(tx *bbolt.Tx, deviceID string) (queueBound, bool) {
	v := tx.Bucket(bucketQExpiryDev).Get([]byte(deviceID))
	if len(v) < 8 {
		return queueBound{}, false
	}
	qb := queueBound{bound: int64(binary.BigEndian.Uint64(v))}
	if len(v) == 24 {
		qb.resume, qb.low = binary.BigEndian.Uint64(v[8:]), int64(binary.BigEndian.Uint64(v[16:]))
	}
	return qb, true
}

// noteExpiry keeps the invariant for a message of deviceID expiring at
// exp, just queued: it writes only if exp is before the device's bound.
func noteExpiry(tx *bbolt.Tx, deviceID string, exp int64) error {
	qb, ok := readBound(tx, deviceID)
	if ok && qb.bound <= exp {
		return nil
	}
	return setBound(tx, deviceID, qb.bound, ok, queueBound{bound: exp})
}

// setBound replaces deviceID's bound (old, if had) with qb; a qb.bound of
// 0 removes it (no queued message expires).
func setBound(tx *bbolt.Tx, deviceID string, old int64, had bool, qb queueBound) error {
	idx := appending(tx.Bucket(bucketQExpiry))
	if had && old != qb.bound {
		if err := idx.Delete(qexpiryKey(old, deviceID)); err != nil {
			return err
		}
	}
	devs := tx.Bucket(bucketQExpiryDev)
	if qb.bound <= 0 {
		return devs.Delete([]byte(deviceID))
	}
	if !had || old != qb.bound {
		if err := idx.Put(qexpiryKey(qb.bound, deviceID), nil); err != nil {
			return err
		}
	}
	v := binary.BigEndian.AppendUint64(make([]byte, 0, 24), uint64(qb.bound))
	if qb.resume > 0 {
		v = binary.BigEndian.AppendUint64(v, qb.resume)
		v = binary.BigEndian.AppendUint64(v, uint64(qb.low))
	}
	return devs.Put([]byte(deviceID), v)
}

// sweepQueues sweeps the queues of the devices whose bound is before
// nowMs, reading at most budget queued records (and at least one per
// device), and returns how many it read. It sets st.More if devices are
// left.
func sweepQueues(tx *bbolt.Tx, nowMs int64, budget int, st *store.SweepStats) (int, error) {
	var due []string
	var bad [][]byte
	c := tx.Bucket(bucketQExpiry).Cursor()
	for k, _ := c.First(); k != nil && len(due) < budget; k, _ = c.Next() {
		if len(k) >= 8 && int64(binary.BigEndian.Uint64(k)) >= nowMs {
			break
		}
		parts, rest, ok := splitParts(k[min(len(k), 8):], 1)
		if len(k) < 8 || !ok || len(rest) != 0 {
			bad = append(bad, append([]byte(nil), k...))
			continue
		}
		due = append(due, parts[0])
	}
	for _, k := range bad { // malformed: nothing refers to it
		if err := tx.Bucket(bucketQExpiry).Delete(k); err != nil {
			return 0, err
		}
	}
	used := 0
	for i, dev := range due {
		if used >= budget {
			st.More = true
			break
		}
		n, err := sweepQueue(tx, dev, nowMs, budget-used, st)
		if err != nil {
			return used, err
		}
		used += max(n, 1)
		if i == len(due)-1 && len(due) == budget {
			st.More = true // the cursor stopped at the budget: there may be more
		}
	}
	return used, nil
}

// sweepQueue walks deviceID's queue from where the last sweep of it
// stopped, deleting the messages expired at nowMs, reading at most budget
// records; then it sets the device's new bound, or where it stopped.
func sweepQueue(tx *bbolt.Tx, deviceID string, nowMs int64, budget int, st *store.SweepStats) (int, error) {
	qb, had := readBound(tx, deviceID)
	if !had {
		return 0, nil
	}
	q := tx.Bucket(bucketQueues).Bucket([]byte(deviceID))
	if q == nil { // the device was deleted with its queue
		return 1, setBound(tx, deviceID, qb.bound, true, queueBound{})
	}
	low, read, last := qb.low, 0, uint64(0)
	var doomed []uint64
	c := q.Cursor()
	k, v := c.First()
	if qb.resume > 0 {
		k, v = c.Seek(seqKey(qb.resume + 1))
	}
	for ; k != nil && read < budget; k, v = c.Next() {
		if len(k) != 8 {
			continue
		}
		read, last = read+1, seqOf(k)
		mv, ok := viewMessage(v)
		switch {
		case !ok: // corrupt: left to Pending to report
		case expired(mv.expires, nowMs):
			doomed = append(doomed, seqOf(k))
		case mv.expires > 0 && (low == 0 || mv.expires < low):
			low = mv.expires
		}
	}
	for _, seq := range doomed {
		if err := dropMessage(tx, deviceID, seq); err != nil {
			return read, err
		}
		st.Messages++
	}
	if k != nil { // out of budget inside the queue: resume after last
		st.More = true
		return read, setBound(tx, deviceID, qb.bound, true, queueBound{bound: qb.bound, resume: last, low: low})
	}
	return read, setBound(tx, deviceID, qb.bound, true, queueBound{bound: low})
}
