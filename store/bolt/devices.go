package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"go.etcd.io/bbolt"

	"github.com/ccsd/ccsd/store"
)

// PutDevice creates d. It returns ErrExists if d.ID is taken. A device with
// a Created time also gets an entry in the creation index, so that
// SweepDevices finds it once it is old enough.
func (db *DB) PutDevice(d store.Device) error {
	if d.ID == "" {
		return fmt.Errorf("store: put device: empty id")
	}
	val := encodeDevice(&d)
	err := db.update(context.Background(), func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketDevices)
		if b.Get([]byte(d.ID)) != nil {
			return clean(store.ErrExists)
		}
		if err := b.Put([]byte(d.ID), val); err != nil {
			return err
		}
		if d.Created.IsZero() {
			return nil
		}
		return tx.Bucket(bucketDevCreated).Put(devCreatedKey(d.Created.UnixMilli(), d.ID), nil)
	})
	if err != nil {
		return fmt.Errorf("store: put device %s: %w", d.ID, err)
	}
	return nil
}

// Device returns the device with the given id, or ErrNotFound.
func (db *DB) Device(id string) (store.Device, error) {
	var d store.Device
	err := db.view(func(tx *bbolt.Tx) error {
		v := tx.Bucket(bucketDevices).Get([]byte(id))
		if v == nil {
			return store.ErrNotFound
		}
		var err error
		d, err = decodeDevice(v)
		return err
	})
	if err != nil {
		return store.Device{}, fmt.Errorf("store: device %s: %w", id, err)
	}
	return d, nil
}

// MarkDeviceLoggedIn records that the device has logged in. Callers call it
// only when the Device they read has LoggedIn false, so it costs one write
// per device, ever; a device already marked is left untouched. It returns
// ErrNotFound for an unknown (or just expired) device.
func (db *DB) MarkDeviceLoggedIn(ctx context.Context, id string) error {
	err := db.update(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketDevices)
		v := b.Get([]byte(id))
		if v == nil {
			return clean(store.ErrNotFound)
		}
		d, err := decodeDevice(v)
		if err != nil {
			return clean(err)
		}
		if d.LoggedIn {
			return nil
		}
		d.LoggedIn = true
		return b.Put([]byte(id), encodeDevice(&d))
	})
	if err != nil {
		return fmt.Errorf("store: mark device %s logged in: %w", id, err)
	}
	return nil
}

// devCreatedKey is be64(created ms) | part(deviceID): a cursor from the
// start of the creation index visits devices oldest first.
func devCreatedKey(createdMs int64, id string) []byte {
	b := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(id)+2), uint64(createdMs))
	return appendPart(b, id)
}

// deviceRegPrefix is the common prefix of a device's entries in the
// registration index.
func deviceRegPrefix(deviceID string) []byte { return appendPart(nil, deviceID) }

// countLiveRegistrations counts the device's live registrations, stopping at
// max (0: no stop). It reads only the registration index.
func countLiveRegistrations(tx *bbolt.Tx, deviceID string, max int) int {
	prefix := deviceRegPrefix(deviceID)
	c := tx.Bucket(bucketRegIndex).Cursor()
	n := 0
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		n++
		if max > 0 && n >= max {
			break
		}
	}
	return n
}

// deleteDevice deletes a device with its live registrations (records and
// index entries), its listed tombstones and its queue (each message with
// its index entries, then the queue bucket). It reports the live
// registrations and the messages it deleted.
func deleteDevice(tx *bbolt.Tx, deviceID string) (regs, msgs int, err error) {
	prefix := deviceRegPrefix(deviceID)
	idx := tx.Bucket(bucketRegIndex)
	var keys, ids [][]byte
	c := idx.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		keys = append(keys, bytes.Clone(k))
		ids = append(ids, bytes.Clone(v))
	}
	for i := range keys {
		if err := idx.Delete(keys[i]); err != nil {
			return 0, 0, err
		}
		if err := tx.Bucket(bucketRegs).Delete(ids[i]); err != nil {
			return 0, 0, err
		}
		// regidx keys are part(device) part(sender) part(app).
		if parts, _, ok := splitParts(keys[i], 2); ok {
			if err := deleteSubscriptions(tx, parts[1], string(ids[i])); err != nil {
				return 0, 0, err
			}
		}
	}
	if err := deleteTombstones(tx, deviceID, 0); err != nil {
		return 0, 0, err
	}
	msgs, err = deleteQueue(tx, deviceID)
	if err != nil {
		return 0, 0, err
	}
	return len(keys), msgs, tx.Bucket(bucketDevices).Delete([]byte(deviceID))
}

// deleteQueue deletes every queued message of a device (through
// deleteMessage, so the expiry and collapse indexes follow), then the queue
// bucket itself: the device is gone, so no session cursor needs its
// sequence any more.
func deleteQueue(tx *bbolt.Tx, deviceID string) (int, error) {
	queues := tx.Bucket(bucketQueues)
	q := queues.Bucket([]byte(deviceID))
	if q == nil {
		return 0, nil
	}
	var seqs []uint64
	c := q.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		seqs = append(seqs, seqOf(k))
	}
	for _, seq := range seqs {
		// A message that does not decode goes with the bucket; its index
		// entries, if any, dangle and Sweep drops them.
		if _, err := deleteMessage(tx, deviceID, seq); err != nil && !errors.Is(err, errCorrupt) {
			return 0, fmt.Errorf("message %s/%d: %w", deviceID, seq, err)
		}
	}
	return len(seqs), queues.DeleteBucket([]byte(deviceID))
}

// maxTombstones bounds the tombstones (unregistered registrations) kept per
// device: register and unregister in a loop must not grow the store
// without bound. Past it the oldest go entirely, and a sender still
// holding such an old token gets BAD_REGISTRATION instead of
// DEVICE_UNREGISTERED.
var maxTombstones = 100

// tombstoneKey is part(deviceID) | be64(seq): a device's tombstones sort
// oldest first.
func tombstoneKey(deviceID string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(appendPart(nil, deviceID), seq)
}

// addTombstone lists regID as the device's newest tombstone and deletes the
// oldest ones past maxTombstones.
func addTombstone(tx *bbolt.Tx, deviceID, regID string) error {
	b := tx.Bucket(bucketTombstones)
	seq, err := b.NextSequence()
	if err != nil {
		return err
	}
	if err := b.Put(tombstoneKey(deviceID, seq), []byte(regID)); err != nil {
		return err
	}
	return deleteTombstones(tx, deviceID, maxTombstones)
}

// deleteTombstones deletes the device's oldest tombstones (the records and
// their list entries) until at most keep are left.
func deleteTombstones(tx *bbolt.Tx, deviceID string, keep int) error {
	b := tx.Bucket(bucketTombstones)
	prefix := appendPart(nil, deviceID)
	var keys, ids [][]byte
	c := b.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		keys = append(keys, bytes.Clone(k))
		ids = append(ids, bytes.Clone(v))
	}
	for i := 0; i < len(keys)-keep; i++ {
		if err := b.Delete(keys[i]); err != nil {
			return err
		}
		if err := deleteTombstoneRecord(tx, ids[i]); err != nil {
			return err
		}
	}
	return nil
}

// deleteTombstoneRecord deletes a registration record if it is still a
// tombstone (a record that does not decode goes too: nothing reads it).
func deleteTombstoneRecord(tx *bbolt.Tx, regID []byte) error {
	regs := tx.Bucket(bucketRegs)
	v := regs.Get(regID)
	if v == nil {
		return nil
	}
	if rec, err := decodeReg(v); err == nil && !rec.Unregistered {
		return nil
	}
	return regs.Delete(regID)
}
