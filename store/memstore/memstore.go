// Package memstore is a store.Backend in memory, FOR TESTS ONLY: plain maps
// under one mutex, nothing durable, no work bounds. It exists to prove that
// the contract suite store/storetest is backend-neutral (it passes against
// store/bolt and against this), and as a reference reading of the contract
// in the fewest lines. The server never uses it.
package memstore

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/ccsd/ccsd/store"
)

// maxTombstones is how many unregistered registrations a device keeps, as
// store/bolt does.
const maxTombstones = 100

// deletedMessagesKey is the reserved collapse key of the deleted_messages
// message an overflow queues.
const deletedMessagesKey = "\x00deleted_messages"

type regRecord struct {
	store.Registration
	unregistered bool
}

type queue struct {
	next uint64          // last Seq handed out: Seqs only grow
	msgs []store.Message // in Seq order
}

type upQueue struct {
	next uint64
	recs []store.Upstream
}

type where struct {
	dev string
	seq uint64
}

// DB is the in-memory backend. Every method takes mu for its whole run, so
// each write is atomic and each read a snapshot.
type DB struct {
	now func() time.Time

	mu         sync.Mutex
	closed     bool
	senders    map[string]store.Sender
	devices    map[string]store.Device
	unjudged   map[string]bool // devices with a Created time SweepDevices has not judged
	regs       map[string]regRecord
	regIndex   map[[3]string]string // (device, sender, app) → live registration id
	tombstones map[string][]string  // device → unregistered ids, oldest first
	queues     map[string]*queue
	collapse   map[[2]string]where // (regID, collapse key) → the message holding it
	upstream   map[string]*upQueue
	dedup      map[[2]string]int64 // (sender, message id) → until ms
	groups     map[string]store.Group
	groupNames map[[2]string]string               // (sender, name) → key
	subs       map[[2]string]map[string]time.Time // (sender, topic) → regID → added
	regTopics  map[string]map[string]time.Time    // regID → topic → added
	jobs       map[uint64]store.TopicJob
	lastJob    uint64
	sa         serviceAccounts // serviceaccounts.go
}

var _ store.Backend = (*DB)(nil)

// New returns an empty in-memory store using opts.Now [time.Now].
func New(opts store.Options) *DB {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &DB{
		now: opts.Now, senders: map[string]store.Sender{}, devices: map[string]store.Device{},
		unjudged: map[string]bool{}, regs: map[string]regRecord{}, regIndex: map[[3]string]string{},
		tombstones: map[string][]string{}, queues: map[string]*queue{}, collapse: map[[2]string]where{},
		upstream: map[string]*upQueue{}, dedup: map[[2]string]int64{}, groups: map[string]store.Group{},
		groupNames: map[[2]string]string{}, subs: map[[2]string]map[string]time.Time{},
		regTopics: map[string]map[string]time.Time{}, jobs: map[uint64]store.TopicJob{},
	}
}

// lock takes mu and reports ErrClosed after Close; on error mu is not held.
func (db *DB) lock() error {
	db.mu.Lock()
	if db.closed {
		db.mu.Unlock()
		return store.ErrClosed
	}
	return nil
}

// write is lock for a write with a context: a cancelled caller writes
// nothing.
func (db *DB) write(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return db.lock()
}

// Close makes every later call return ErrClosed.
func (db *DB) Close() error {
	db.mu.Lock()
	db.closed = true
	db.mu.Unlock()
	return nil
}

// LastCommitErr is nil (memory never fills a disk) or ErrClosed.
func (db *DB) LastCommitErr() error {
	if err := db.lock(); err != nil {
		return err
	}
	db.mu.Unlock()
	return nil
}

// done is a Write whose outcome is already known.
type done struct{ err error }

func (d done) Wait(context.Context) error { return d.err }

// Then calls fn at once: the write is already done.
func (d done) Then(fn func(error)) { fn(d.err) }

func expired(expires, nowMs int64) bool { return expires > 0 && nowMs > expires }

// cloneBytes keeps callers from changing stored payloads after a write.
func cloneBytes(b []byte) []byte { return append([]byte(nil), b...) }

// PutSender implements store.Senders.
func (db *DB) PutSender(s store.Sender) error {
	if err := db.lock(); err != nil {
		return err
	}
	defer db.mu.Unlock()
	if _, ok := db.senders[s.ID]; ok {
		return fmt.Errorf("memstore: put sender %s: %w", s.ID, store.ErrExists)
	}
	s.KeyHash = cloneBytes(s.KeyHash)
	db.senders[s.ID] = s
	return nil
}

// Sender implements store.Senders.
func (db *DB) Sender(id string) (store.Sender, error) {
	if err := db.lock(); err != nil {
		return store.Sender{}, err
	}
	defer db.mu.Unlock()
	s, ok := db.senders[id]
	if !ok {
		return store.Sender{}, fmt.Errorf("memstore: sender %s: %w", id, store.ErrNotFound)
	}
	return s, nil
}

// Senders implements store.Senders.
func (db *DB) Senders() ([]store.Sender, error) {
	if err := db.lock(); err != nil {
		return nil, err
	}
	defer db.mu.Unlock()
	out := make([]store.Sender, 0, len(db.senders))
	for _, s := range db.senders {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// RevokeSender implements store.Senders.
func (db *DB) RevokeSender(id string) error {
	if err := db.lock(); err != nil {
		return err
	}
	defer db.mu.Unlock()
	s, ok := db.senders[id]
	if !ok {
		return fmt.Errorf("memstore: revoke sender %s: %w", id, store.ErrNotFound)
	}
	s.Revoked = true
	db.senders[id] = s
	return nil
}

// SetGroupCopies implements store.Senders.
func (db *DB) SetGroupCopies(id string, on bool) (store.Sender, error) {
	if err := db.lock(); err != nil {
		return store.Sender{}, err
	}
	defer db.mu.Unlock()
	s, ok := db.senders[id]
	if !ok {
		return store.Sender{}, fmt.Errorf("memstore: set group copies of sender %s: %w", id, store.ErrNotFound)
	}
	s.GroupCopies = on
	db.senders[id] = s
	return s, nil
}

// PutDevice implements store.Devices.
func (db *DB) PutDevice(d store.Device) error {
	if err := db.lock(); err != nil {
		return err
	}
	defer db.mu.Unlock()
	if _, ok := db.devices[d.ID]; ok {
		return fmt.Errorf("memstore: put device %s: %w", d.ID, store.ErrExists)
	}
	d.SecretHash = cloneBytes(d.SecretHash)
	db.devices[d.ID] = d
	if !d.Created.IsZero() {
		db.unjudged[d.ID] = true
	}
	return nil
}

// Device implements store.Devices.
func (db *DB) Device(id string) (store.Device, error) {
	if err := db.lock(); err != nil {
		return store.Device{}, err
	}
	defer db.mu.Unlock()
	d, ok := db.devices[id]
	if !ok {
		return store.Device{}, fmt.Errorf("memstore: device %s: %w", id, store.ErrNotFound)
	}
	return d, nil
}

// MarkDeviceLoggedIn implements store.Devices.
func (db *DB) MarkDeviceLoggedIn(ctx context.Context, id string) error {
	if err := db.write(ctx); err != nil {
		return err
	}
	defer db.mu.Unlock()
	d, ok := db.devices[id]
	if !ok {
		return fmt.Errorf("memstore: mark device %s: %w", id, store.ErrNotFound)
	}
	d.LoggedIn = true
	db.devices[id] = d
	return nil
}

// liveRegistrations counts the device's live registrations.
func (db *DB) liveRegistrations(deviceID string) int {
	n := 0
	for k := range db.regIndex {
		if k[0] == deviceID {
			n++
		}
	}
	return n
}

// SweepDevices implements store.Devices, judging every candidate in one
// call.
func (db *DB) SweepDevices(ctx context.Context, createdBefore time.Time) (store.DeviceSweepStats, error) {
	if err := db.write(ctx); err != nil {
		return store.DeviceSweepStats{}, err
	}
	defer db.mu.Unlock()
	var st store.DeviceSweepStats
	for id := range db.unjudged {
		d, ok := db.devices[id]
		if !ok {
			delete(db.unjudged, id)
			continue
		}
		if !d.Created.Before(createdBefore) {
			continue
		}
		delete(db.unjudged, id)
		st.Checked++
		if d.LoggedIn && db.liveRegistrations(id) > 0 {
			continue
		}
		st.Devices++
		for k, rid := range db.regIndex {
			if k[0] == id {
				delete(db.regIndex, k)
				delete(db.regs, rid)
				db.dropSubscriptions(k[1], rid)
				st.Registrations++
			}
		}
		for _, rid := range db.tombstones[id] {
			delete(db.regs, rid)
		}
		delete(db.tombstones, id)
		if q := db.queues[id]; q != nil {
			for len(q.msgs) > 0 {
				db.deleteMessage(id, q.msgs[0].Seq)
				st.Messages++
			}
		}
		delete(db.queues, id)
		delete(db.devices, id)
	}
	return st, nil
}

// Register implements store.Registrations.
func (db *DB) Register(r store.Registration) (store.Registration, error) {
	return db.register(r, 0, false)
}

// RegisterLimited implements store.Registrations.
func (db *DB) RegisterLimited(r store.Registration, max int) (store.Registration, error) {
	return db.register(r, max, true)
}

func (db *DB) register(r store.Registration, max int, needDevice bool) (store.Registration, error) {
	if err := db.lock(); err != nil {
		return store.Registration{}, err
	}
	defer db.mu.Unlock()
	ik := [3]string{r.DeviceID, r.SenderID, r.App}
	if id, ok := db.regIndex[ik]; ok {
		return db.regs[id].Registration, nil
	}
	if _, ok := db.devices[r.DeviceID]; needDevice && !ok {
		return store.Registration{}, fmt.Errorf("memstore: register %s: device %s: %w", r.ID, r.DeviceID, store.ErrNotFound)
	}
	if max > 0 && db.liveRegistrations(r.DeviceID) >= max {
		return store.Registration{}, fmt.Errorf("memstore: register %s: %w", r.ID, store.ErrTooManyRegistrations)
	}
	if _, ok := db.regs[r.ID]; ok {
		return store.Registration{}, fmt.Errorf("memstore: register %s: %w", r.ID, store.ErrExists)
	}
	db.regs[r.ID] = regRecord{Registration: r}
	db.regIndex[ik] = r.ID
	return r, nil
}

func (db *DB) registration(id string) (store.Registration, error) {
	rec, ok := db.regs[id]
	if !ok {
		return store.Registration{}, fmt.Errorf("memstore: registration %s: %w", id, store.ErrNotFound)
	}
	if rec.unregistered {
		return rec.Registration, fmt.Errorf("memstore: registration %s: %w", id, store.ErrUnregistered)
	}
	return rec.Registration, nil
}

// Registration implements store.Registrations.
func (db *DB) Registration(id string) (store.Registration, error) {
	if err := db.lock(); err != nil {
		return store.Registration{}, err
	}
	defer db.mu.Unlock()
	return db.registration(id)
}

// Registrations implements store.Registrations.
func (db *DB) Registrations(ids []string) ([]store.Registration, []error, error) {
	if err := db.lock(); err != nil {
		return nil, nil, err
	}
	defer db.mu.Unlock()
	regs, errs := make([]store.Registration, len(ids)), make([]error, len(ids))
	for i, id := range ids {
		regs[i], errs[i] = db.registration(id)
	}
	return regs, errs, nil
}

// FindRegistration implements store.Registrations.
func (db *DB) FindRegistration(deviceID, senderID, app string) (store.Registration, error) {
	if err := db.lock(); err != nil {
		return store.Registration{}, err
	}
	defer db.mu.Unlock()
	id, ok := db.regIndex[[3]string{deviceID, senderID, app}]
	if !ok {
		return store.Registration{}, fmt.Errorf("memstore: find registration: %w", store.ErrNotFound)
	}
	return db.regs[id].Registration, nil
}

// Unregister implements store.Registrations.
func (db *DB) Unregister(ctx context.Context, id string) error {
	if err := db.write(ctx); err != nil {
		return err
	}
	defer db.mu.Unlock()
	rec, ok := db.regs[id]
	if !ok {
		return fmt.Errorf("memstore: unregister %s: %w", id, store.ErrNotFound)
	}
	if !rec.unregistered {
		db.unregisterLocked(id)
	}
	return nil
}

// seqsOf lists the Seqs of the messages keep selects.
func seqsOf(ms []store.Message, keep func(m *store.Message) bool) []uint64 {
	var out []uint64
	for i := range ms {
		if keep(&ms[i]) {
			out = append(out, ms[i].Seq)
		}
	}
	return out
}
