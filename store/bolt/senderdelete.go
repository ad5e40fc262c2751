package bolt

import (
	"context"
	"fmt"

	"go.etcd.io/bbolt"

	"github.com/ccsd/ccsd/store"
)

var _ store.SenderDeleter = (*DB)(nil)

// DeleteSender implements store.SenderDeleter. It reads the whole regs
// and groups buckets, in the committer's transaction: deleting a sender
// is a rare operator's act, and an index by sender written on every
// Register would cost every registration instead.
func (db *DB) DeleteSender(ctx context.Context, id string, force bool) (store.SenderDeleted, error) {
	var out store.SenderDeleted
	err := db.update(ctx, func(tx *bbolt.Tx) error {
		out = store.SenderDeleted{} // the op may run more than once
		if tx.Bucket(bucketSenders).Get([]byte(id)) == nil {
			return clean(store.ErrNotFound)
		}
		regs, err := liveRegsOfSender(tx, id)
		if err != nil {
			return clean(err)
		}
		if len(regs) > 0 && !force {
			return clean(fmt.Errorf("%w: %d", store.ErrHasRegistrations, len(regs)))
		}
		for _, rec := range regs {
			n, err := unregisterInTx(tx, rec)
			if err != nil {
				return err
			}
			out.Registrations++
			out.Messages += n
		}
		if out.Upstream, err = deleteUpstreamQueue(tx, id); err != nil {
			return err
		}
		if out.Groups, err = deleteGroupsOf(tx, id); err != nil {
			return err
		}
		if err := deleteServiceAccountsOf(tx, id); err != nil {
			return err
		}
		return tx.Bucket(bucketSenders).Delete([]byte(id))
	})
	if err != nil {
		return store.SenderDeleted{}, fmt.Errorf("store: delete sender %s: %w", id, err)
	}
	return out, nil
}

// liveRegsOfSender lists the live registrations naming the sender.
func liveRegsOfSender(tx *bbolt.Tx, senderID string) ([]regRecord, error) {
	var out []regRecord
	err := tx.Bucket(bucketRegs).ForEach(func(k, v []byte) error {
		rec, err := decodeReg(v)
		if err != nil {
			return fmt.Errorf("registration %q: %w", k, err)
		}
		if rec.SenderID == senderID && !rec.Unregistered {
			out = append(out, rec)
		}
		return nil
	})
	return out, err
}

// unregisterInTx is Unregister's write for a live registration, inside a
// transaction of the caller's; it returns how many queued messages it
// deleted.
func unregisterInTx(tx *bbolt.Tx, rec regRecord) (int, error) {
	id := rec.ID
	rec.Unregistered = true
	if err := tx.Bucket(bucketRegs).Put([]byte(id), encodeReg(&rec)); err != nil {
		return 0, err
	}
	idx := tx.Bucket(bucketRegIndex)
	ik := regIndexKey(rec.DeviceID, rec.SenderID, rec.App)
	if cur := idx.Get(ik); cur != nil && string(cur) == id {
		if err := idx.Delete(ik); err != nil {
			return 0, err
		}
	}
	if err := addTombstone(tx, rec.DeviceID, id); err != nil {
		return 0, err
	}
	if err := deleteSubscriptions(tx, rec.SenderID, id); err != nil {
		return 0, err
	}
	q := tx.Bucket(bucketQueues).Bucket([]byte(rec.DeviceID))
	if q == nil {
		return 0, nil
	}
	var doomed []uint64
	c := q.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		reg, err := messageRegID(v)
		if err != nil {
			return 0, fmt.Errorf("message %s/%x: %w", rec.DeviceID, k, err)
		}
		if string(reg) == id {
			doomed = append(doomed, seqOf(k))
		}
	}
	for _, seq := range doomed {
		if _, err := deleteMessage(tx, rec.DeviceID, seq); err != nil {
			return 0, err
		}
	}
	return len(doomed), nil
}

// deleteUpstreamQueue deletes every upstream record of the sender (with
// its expiry entry and its share of the usage counts). The queue's bucket
// stays, so that its sequence numbers keep growing if the id comes back.
func deleteUpstreamQueue(tx *bbolt.Tx, senderID string) (int, error) {
	b := tx.Bucket(bucketUpstream).Bucket([]byte(senderID))
	if b == nil {
		return 0, nil
	}
	var seqs []uint64
	if err := b.ForEach(func(k, _ []byte) error {
		seqs = append(seqs, seqOf(k))
		return nil
	}); err != nil {
		return 0, err
	}
	for _, seq := range seqs {
		if err := deleteUpstream(tx, senderID, seq); err != nil {
			return 0, err
		}
	}
	return len(seqs), nil
}

// deleteGroupsOf deletes the sender's device groups and their names.
func deleteGroupsOf(tx *bbolt.Tx, senderID string) (int, error) {
	groups := tx.Bucket(bucketGroups)
	if groups == nil {
		return 0, nil
	}
	var doomed []store.Group
	if err := groups.ForEach(func(k, v []byte) error {
		g, err := decodeGroup(v)
		if err != nil {
			return fmt.Errorf("group %q: %w", k, err)
		}
		if g.SenderID == senderID {
			g.Key = string(k)
			doomed = append(doomed, g)
		}
		return nil
	}); err != nil {
		return 0, err
	}
	names := tx.Bucket(bucketGroupNames)
	for _, g := range doomed {
		if err := groups.Delete([]byte(g.Key)); err != nil {
			return 0, err
		}
		if names != nil {
			if err := names.Delete(groupNameKey(senderID, g.Name)); err != nil {
				return 0, err
			}
		}
	}
	return len(doomed), nil
}
