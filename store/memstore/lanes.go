package memstore

import "github.com/ccsd/ccsd/store"

// PendingLane implements store.Queues: Pending filtered by lane (the
// memstore has no index to keep).
func (db *DB) PendingLane(deviceID string, lane store.Lane, after uint64, limit int, nowMs int64) ([]store.Message, error) {
	if err := db.lock(); err != nil {
		return nil, err
	}
	defer db.mu.Unlock()
	var out []store.Message
	if q := db.queues[deviceID]; q != nil && lane != store.LaneNormal {
		for _, m := range q.msgs {
			if m.Seq <= after || expired(m.Expires, nowMs) || m.Lane() != lane {
				continue
			}
			if limit > 0 && len(out) == limit {
				break
			}
			m.Payload = cloneBytes(m.Payload)
			out = append(out, m)
		}
	}
	return out, nil
}
