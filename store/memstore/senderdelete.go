package memstore

import (
	"context"
	"fmt"

	"github.com/ccsd/ccsd/store"
)

var _ store.SenderDeleter = (*DB)(nil)

// DeleteSender implements store.SenderDeleter, under the one mutex.
func (db *DB) DeleteSender(ctx context.Context, id string, force bool) (store.SenderDeleted, error) {
	if err := db.write(ctx); err != nil {
		return store.SenderDeleted{}, err
	}
	defer db.mu.Unlock()
	if _, ok := db.senders[id]; !ok {
		return store.SenderDeleted{}, fmt.Errorf("memstore: delete sender %s: %w", id, store.ErrNotFound)
	}
	var live []string
	for regID, rec := range db.regs {
		if rec.SenderID == id && !rec.unregistered {
			live = append(live, regID)
		}
	}
	if len(live) > 0 && !force {
		return store.SenderDeleted{}, fmt.Errorf("memstore: delete sender %s: %w: %d", id, store.ErrHasRegistrations, len(live))
	}
	var out store.SenderDeleted
	for _, regID := range live {
		out.Registrations++
		out.Messages += db.unregisterLocked(regID)
	}
	if q := db.upstream[id]; q != nil {
		out.Upstream = len(q.recs)
		q.recs = nil // next stays: sequence numbers keep growing
	}
	for key, g := range db.groups {
		if g.SenderID == id {
			delete(db.groups, key)
			delete(db.groupNames, [2]string{id, g.Name})
			out.Groups++
		}
	}
	sa := db.saTables()
	for kid, k := range sa.keys {
		if k.SenderID == id {
			delete(sa.keys, kid)
		}
	}
	for h, tok := range sa.tokens {
		if tok.SenderID == id {
			delete(sa.tokens, h)
		}
	}
	delete(db.senders, id)
	return out, nil
}

// unregisterLocked is Unregister's work on a live registration, with mu
// held; it returns how many queued messages it deleted.
func (db *DB) unregisterLocked(id string) int {
	rec := db.regs[id]
	rec.unregistered = true
	db.regs[id] = rec
	ik := [3]string{rec.DeviceID, rec.SenderID, rec.App}
	if db.regIndex[ik] == id {
		delete(db.regIndex, ik)
	}
	ts := append(db.tombstones[rec.DeviceID], id)
	for len(ts) > maxTombstones {
		if old := db.regs[ts[0]]; old.unregistered {
			delete(db.regs, ts[0])
		}
		ts = ts[1:]
	}
	db.tombstones[rec.DeviceID] = ts
	db.dropSubscriptions(rec.SenderID, id)
	q := db.queues[rec.DeviceID]
	if q == nil {
		return 0
	}
	seqs := seqsOf(q.msgs, func(m *store.Message) bool { return m.RegID == id })
	for _, seq := range seqs {
		db.deleteMessage(rec.DeviceID, seq)
	}
	return len(seqs)
}
