package bolt

import (
	"context"
	"fmt"

	"go.etcd.io/bbolt"

	"github.com/ccsd/ccsd/store"
)

func regIndexKey(deviceID, senderID, app string) []byte {
	return compositeKey(deviceID, senderID, app)
}

// Register stores r unless (DeviceID, SenderID, App) already has a live
// registration, in which case it returns that one (GCM hands the same token
// back). It returns ErrExists if r.ID is already used by another
// registration, live or unregistered. It neither bounds the device's
// registrations nor checks that the device exists: RegisterLimited does.
func (db *DB) Register(r store.Registration) (store.Registration, error) {
	return db.register(r, 0, false)
}

// RegisterLimited is Register for a device that must exist (else
// ErrNotFound) and may hold at most max live registrations (else
// ErrTooManyRegistrations; max <= 0: no bound). Both are checked in the
// registration's own transaction, so concurrent registrations cannot pass
// the bound together and none outlives a device SweepDevices just deleted.
// Re-registering a live (DeviceID, SenderID, App) returns its registration
// even at the bound.
func (db *DB) RegisterLimited(r store.Registration, max int) (store.Registration, error) {
	return db.register(r, max, true)
}

func (db *DB) register(r store.Registration, max int, needDevice bool) (store.Registration, error) {
	if r.ID == "" || r.DeviceID == "" || r.SenderID == "" {
		return store.Registration{}, fmt.Errorf("store: register: id, device and sender are required")
	}
	var out store.Registration
	idx := regIndexKey(r.DeviceID, r.SenderID, r.App)
	val := encodeReg(&regRecord{Registration: r})
	err := db.update(context.Background(), func(tx *bbolt.Tx) error {
		regs := tx.Bucket(bucketRegs)
		if id := tx.Bucket(bucketRegIndex).Get(idx); id != nil {
			v := regs.Get(id)
			if v == nil {
				return clean(fmt.Errorf("index points to missing registration %q: %w", id, errCorrupt))
			}
			rec, err := decodeReg(v)
			if err != nil {
				return clean(err)
			}
			out = rec.Registration
			return nil
		}
		if needDevice && tx.Bucket(bucketDevices).Get([]byte(r.DeviceID)) == nil {
			return clean(fmt.Errorf("device %s: %w", r.DeviceID, store.ErrNotFound))
		}
		if max > 0 && countLiveRegistrations(tx, r.DeviceID, max) >= max {
			return clean(store.ErrTooManyRegistrations)
		}
		if regs.Get([]byte(r.ID)) != nil {
			return clean(store.ErrExists)
		}
		if err := regs.Put([]byte(r.ID), val); err != nil {
			return err
		}
		out = r
		return tx.Bucket(bucketRegIndex).Put(idx, []byte(r.ID))
	})
	if err != nil {
		return store.Registration{}, fmt.Errorf("store: register %s: %w", r.ID, err)
	}
	return out, nil
}

// Registration returns the registration with the given id. For an unknown
// id it returns ErrNotFound; for an unregistered one it returns the record
// and ErrUnregistered (tombstones are kept so senders get
// DEVICE_UNREGISTERED, not BAD_REGISTRATION).
func (db *DB) Registration(id string) (store.Registration, error) {
	var rec regRecord
	err := db.view(func(tx *bbolt.Tx) error {
		v := tx.Bucket(bucketRegs).Get([]byte(id))
		if v == nil {
			return store.ErrNotFound
		}
		var err error
		rec, err = decodeReg(v)
		return err
	})
	if err != nil {
		return store.Registration{}, fmt.Errorf("store: registration %s: %w", id, err)
	}
	if rec.Unregistered {
		return rec.Registration, fmt.Errorf("store: registration %s: %w", id, store.ErrUnregistered)
	}
	return rec.Registration, nil
}

// Registrations looks up many ids in one read transaction (a group's
// members, say). errs[i] is nil, or wraps ErrNotFound or ErrUnregistered
// (with regs[i] filled in) as Registration's would; a failure of the read
// itself is the returned error.
func (db *DB) Registrations(ids []string) (regs []store.Registration, errs []error, err error) {
	regs = make([]store.Registration, len(ids))
	errs = make([]error, len(ids))
	err = db.view(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketRegs)
		for i, id := range ids {
			v := b.Get([]byte(id))
			if v == nil {
				errs[i] = fmt.Errorf("store: registration %s: %w", id, store.ErrNotFound)
				continue
			}
			rec, err := decodeReg(v)
			if err != nil {
				return fmt.Errorf("store: registration %s: %w", id, err)
			}
			regs[i] = rec.Registration
			if rec.Unregistered {
				errs[i] = fmt.Errorf("store: registration %s: %w", id, store.ErrUnregistered)
			}
		}
		return nil
	})
	return regs, errs, err
}

// FindRegistration returns the live registration of app on deviceID for
// senderID, or ErrNotFound.
func (db *DB) FindRegistration(deviceID, senderID, app string) (store.Registration, error) {
	var rec regRecord
	err := db.view(func(tx *bbolt.Tx) error {
		id := tx.Bucket(bucketRegIndex).Get(regIndexKey(deviceID, senderID, app))
		if id == nil {
			return store.ErrNotFound
		}
		v := tx.Bucket(bucketRegs).Get(id)
		if v == nil {
			return fmt.Errorf("index points to missing registration %q: %w", id, errCorrupt)
		}
		var err error
		rec, err = decodeReg(v)
		return err
	})
	if err != nil {
		return store.Registration{}, fmt.Errorf("store: find registration %s/%s/%s: %w", deviceID, senderID, app, err)
	}
	return rec.Registration, nil
}

// Unregister tombstones the registration and deletes, in the same commit,
// every queued device message of that registration together with its index
// entries. It returns ErrNotFound for an unknown id; unregistering an
// already unregistered id is a no-op.
//
// The device's queue is scanned (reading only each message's RegID): a
// device queue is bounded by the router, and unregistration is rare, so this
// costs less than a per-registration index written on every Enqueue.
func (db *DB) Unregister(ctx context.Context, id string) error {
	err := db.update(ctx, func(tx *bbolt.Tx) error {
		regs := tx.Bucket(bucketRegs)
		v := regs.Get([]byte(id))
		if v == nil {
			return clean(store.ErrNotFound)
		}
		rec, err := decodeReg(v)
		if err != nil {
			return clean(err)
		}
		if rec.Unregistered {
			return nil
		}
		rec.Unregistered = true
		if err := regs.Put([]byte(id), encodeReg(&rec)); err != nil {
			return err
		}
		idx := tx.Bucket(bucketRegIndex)
		ik := regIndexKey(rec.DeviceID, rec.SenderID, rec.App)
		if cur := idx.Get(ik); cur != nil && string(cur) == id {
			if err := idx.Delete(ik); err != nil {
				return err
			}
		}
		if err := addTombstone(tx, rec.DeviceID, id); err != nil {
			return err
		}
		if err := deleteSubscriptions(tx, rec.SenderID, id); err != nil {
			return err
		}
		q := tx.Bucket(bucketQueues).Bucket([]byte(rec.DeviceID))
		if q == nil {
			return nil
		}
		var doomed []uint64
		c := q.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			reg, err := messageRegID(v)
			if err != nil {
				return fmt.Errorf("message %s/%x: %w", rec.DeviceID, k, err)
			}
			if string(reg) == id {
				doomed = append(doomed, seqOf(k))
			}
		}
		for _, seq := range doomed {
			if _, err := deleteMessage(tx, rec.DeviceID, seq); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: unregister %s: %w", id, err)
	}
	return nil
}
