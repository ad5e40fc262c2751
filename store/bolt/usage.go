package bolt

import (
	"sync"

	"go.etcd.io/bbolt"

	"github.com/ccsd/ccsd/store"
)

// upstreamUsage keeps QueueUsage per sender in memory, so that a limit on
// the upstream queues is checked without reading the store. It is built
// once at Open by walking the upstream queues and then changed only by
// commit handlers of the transactions that push or delete upstream
// records, so it always matches what is on disk (a rolled-back batch runs
// no handler).
type upstreamUsage struct {
	mu  sync.Mutex
	m   map[string]store.QueueUsage
	sum store.QueueUsage // over every sender, for Stats
}

func (u *upstreamUsage) add(sender string, n int, bytes int64) {
	if u == nil {
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	u.sum.Messages += n
	u.sum.Bytes += bytes
	q := u.m[sender]
	q.Messages += n
	q.Bytes += bytes
	if q.Messages <= 0 {
		delete(u.m, sender) // an empty queue takes no entry
		return
	}
	u.m[sender] = q
}

// total is the usage of every sender's queue together.
func (u *upstreamUsage) total() store.QueueUsage {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.sum
}

func (u *upstreamUsage) get(sender string) store.QueueUsage {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.m[sender]
}

// usages finds a DB's usage table from inside one of its transactions: the
// helpers that push and delete upstream records (pushUpstream,
// deleteUpstream) are called with only a transaction, from several files.
var usages sync.Map // *bbolt.DB -> *upstreamUsage

func usageOf(tx *bbolt.Tx) *upstreamUsage {
	v, _ := usages.Load(tx.DB())
	u, _ := v.(*upstreamUsage)
	return u
}

// countedOnCommit records that a transaction adds (n > 0) or removes
// (n < 0) upstream records of sender: the table changes only once the
// transaction has committed.
func countedOnCommit(tx *bbolt.Tx, sender string, n int, bytes int64) {
	if u := usageOf(tx); u != nil {
		tx.OnCommit(func() { u.add(sender, n, bytes) })
	}
}

// loadUpstreamUsage walks every upstream queue once, counting records and
// their sizes without decoding them.
func loadUpstreamUsage(bdb *bbolt.DB) (*upstreamUsage, error) {
	u := &upstreamUsage{m: make(map[string]store.QueueUsage)}
	err := bdb.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketUpstream).ForEachBucket(func(name []byte) error {
			var q store.QueueUsage
			c := tx.Bucket(bucketUpstream).Bucket(name).Cursor()
			for k, v := c.First(); k != nil; k, v = c.Next() {
				if len(k) == 8 {
					q.Messages++
					q.Bytes += int64(len(v))
				}
			}
			if q.Messages > 0 {
				u.m[string(name)] = q
				u.sum.Messages += q.Messages
				u.sum.Bytes += q.Bytes
			}
			return nil
		})
	})
	return u, err
}

// UpstreamUsage returns what senderID's upstream queue holds. It is read
// from memory and costs one mutex: fit for a check on every message.
func (db *DB) UpstreamUsage(senderID string) store.QueueUsage {
	return db.usage.get(senderID)
}
