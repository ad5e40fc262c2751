package memstore

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/ccsd/ccsd/store"
)

// liveOf reports whether regID is a live registration of senderID.
func (db *DB) liveOf(senderID, regID string) bool {
	r, ok := db.regs[regID]
	return ok && !r.unregistered && r.SenderID == senderID
}

// Subscribe implements store.Topics.
func (db *DB) Subscribe(ctx context.Context, senderID, topic string, regIDs []string, max int) ([]error, error) {
	if err := db.write(ctx); err != nil {
		return nil, err
	}
	defer db.mu.Unlock()
	now := time.UnixMilli(db.now().UnixMilli())
	errs := make([]error, len(regIDs))
	tk := [2]string{senderID, topic}
	for i, id := range regIDs {
		switch {
		case !db.liveOf(senderID, id):
			errs[i] = store.ErrNotFound
			continue
		case !db.regTopics[id][topic].IsZero():
			continue
		case max > 0 && len(db.regTopics[id]) >= max:
			errs[i] = store.ErrTooManyTopics
			continue
		}
		if db.regTopics[id] == nil {
			db.regTopics[id] = map[string]time.Time{}
		}
		if db.subs[tk] == nil {
			db.subs[tk] = map[string]time.Time{}
		}
		db.regTopics[id][topic], db.subs[tk][id] = now, now
	}
	return errs, nil
}

// Unsubscribe implements store.Topics.
func (db *DB) Unsubscribe(ctx context.Context, senderID, topic string, regIDs []string) ([]error, error) {
	if err := db.write(ctx); err != nil {
		return nil, err
	}
	defer db.mu.Unlock()
	errs := make([]error, len(regIDs))
	for i, id := range regIDs {
		if !db.liveOf(senderID, id) {
			errs[i] = store.ErrNotFound
			continue
		}
		delete(db.regTopics[id], topic)
		delete(db.subs[[2]string{senderID, topic}], id)
	}
	return errs, nil
}

// dropSubscriptions deletes every subscription of a registration, under mu.
func (db *DB) dropSubscriptions(senderID, regID string) {
	for topic := range db.regTopics[regID] {
		delete(db.subs[[2]string{senderID, topic}], regID)
	}
	delete(db.regTopics, regID)
}

// Subscriptions implements store.Topics.
func (db *DB) Subscriptions(regID string) ([]store.Subscription, error) {
	if err := db.lock(); err != nil {
		return nil, err
	}
	defer db.mu.Unlock()
	var out []store.Subscription
	for t, at := range db.regTopics[regID] {
		out = append(out, store.Subscription{Topic: t, Added: at})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Topic < out[j].Topic })
	return out, nil
}

// Subscribers implements store.Topics.
func (db *DB) Subscribers(senderID, topic, after string, limit int) ([]store.Registration, error) {
	if err := db.lock(); err != nil {
		return nil, err
	}
	defer db.mu.Unlock()
	var ids []string
	for id := range db.subs[[2]string{senderID, topic}] {
		if id > after {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	if limit > 0 && len(ids) > limit {
		ids = ids[:limit]
	}
	out := make([]store.Registration, 0, len(ids))
	for _, id := range ids {
		out = append(out, db.regs[id].Registration)
	}
	return out, nil
}

// PutTopicJob implements store.Topics.
func (db *DB) PutTopicJob(ctx context.Context, j *store.TopicJob) error {
	if err := db.write(ctx); err != nil {
		return err
	}
	defer db.mu.Unlock()
	now := db.now().UnixMilli()
	dk := [2]string{j.SenderID, j.MessageID}
	if j.MessageID != "" {
		if until, ok := db.dedup[dk]; ok && until >= now {
			return fmt.Errorf("memstore: put topic job %s/%s: %w", j.SenderID, j.MessageID, store.ErrDuplicate)
		}
		delete(db.dedup, dk)
		if j.DedupUntil >= now {
			db.dedup[dk] = j.DedupUntil
		}
	}
	db.lastJob++
	j.ID = db.lastJob
	c := *j
	c.Body = cloneBytes(j.Body)
	db.jobs[j.ID] = c
	return nil
}

// TopicJobs implements store.Topics.
func (db *DB) TopicJobs() ([]store.TopicJob, error) {
	if err := db.lock(); err != nil {
		return nil, err
	}
	defer db.mu.Unlock()
	out := make([]store.TopicJob, 0, len(db.jobs))
	for _, j := range db.jobs {
		j.Body = cloneBytes(j.Body)
		out = append(out, j)
	}
	sort.Slice(out, func(i, k int) bool { return out[i].ID < out[k].ID })
	return out, nil
}

// AdvanceTopicJob implements store.Topics.
func (db *DB) AdvanceTopicJob(ctx context.Context, jobID uint64, step int, cursor string, done bool, e *store.Enqueue) error {
	if e != nil {
		for i := range e.Messages {
			if e.Messages[i].DeviceID == "" || (e.Messages[i].MaxQueued > 0 && e.Overflow == nil) {
				return fmt.Errorf("memstore: advance topic job %d: message %d cannot be queued", jobID, i)
			}
		}
	}
	if err := db.write(ctx); err != nil {
		return err
	}
	defer db.mu.Unlock()
	j, ok := db.jobs[jobID]
	if !ok {
		return fmt.Errorf("memstore: advance topic job %d: %w", jobID, store.ErrNotFound)
	}
	if e != nil {
		db.putCopies(e)
	}
	if done {
		delete(db.jobs, jobID)
		return nil
	}
	j.Step, j.Cursor = step, cursor
	db.jobs[jobID] = j
	return nil
}

// Memberships implements store.Topics.
func (db *DB) Memberships(regIDs []string, topics []string) ([]uint32, error) {
	if len(topics) > 32 {
		return nil, fmt.Errorf("memstore: memberships: %d topics, at most 32", len(topics))
	}
	if err := db.lock(); err != nil {
		return nil, err
	}
	defer db.mu.Unlock()
	masks := make([]uint32, len(regIDs))
	for k, id := range regIDs {
		for i, t := range topics {
			if _, ok := db.regTopics[id][t]; ok {
				masks[k] |= 1 << i
			}
		}
	}
	return masks, nil
}
