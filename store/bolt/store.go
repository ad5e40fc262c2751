package bolt

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/ccsd/ccsd/internal/stats"
	"github.com/ccsd/ccsd/store"
)

// SchemaVersion is the schema version this package writes. Version 2
// writes queued messages in a compact layout (msgcodec.go) that a version 1
// build cannot read; version 3 adds the priority and delay_while_idle flag
// bits of that record (and the lanes bucket), which a version 2 build
// would take for a corrupt record. An older build refuses a newer file;
// this one reads version 1 and 2 files, whose records it still reads, and
// marks them version 3 at Open (nothing else is migrated).
const SchemaVersion = 3

// oldestSchema is the oldest schema version Open accepts.
const oldestSchema = 1

// Options tunes Open. The zero value is the production default.
type Options struct {
	// CommitDelay is extra time the committer waits to gather a batch. 0 (the
	// default) commits as soon as the previous commit ended.
	CommitDelay time.Duration
	// MaxBatch is the maximum number of write operations in one commit,
	// default 1000.
	MaxBatch int
	// LockTimeout is how long Open waits for the file lock before returning
	// store.ErrLocked, default 1s.
	LockTimeout time.Duration
	// Now is the clock (store.Options.Now) [time.Now].
	Now func() time.Time
}

// DB implements the whole store contract.
var _ store.Backend = (*DB)(nil)

// Stats counts the work of the group committer since Open, and what the
// store holds in memory about its queues. Every field is read from
// counters or memory: Stats costs no disk access.
type Stats struct {
	Commits uint64 // bbolt transactions committed (fsyncs)
	Ops     uint64 // write operations that succeeded in those commits
	// Failures counts commits that failed (every op in them got the error).
	Failures uint64
	// Batch is the distribution of ops per successful commit (the
	// group-commit batch size, refused ops included); CommitNanos that of
	// the time the commit took, transaction and fsyncs, in nanoseconds.
	Batch, CommitNanos stats.HistogramSnapshot
	// WrittenBytes is what commits wrote to the file: the pages bbolt
	// allocated for them plus one meta page each. PageWrites counts bbolt's
	// write calls (one per run of contiguous pages, one per meta page).
	WrittenBytes, PageWrites uint64
	// Upstream is the sum of every sender's upstream queue (UpstreamUsage).
	Upstream store.QueueUsage
}

// Bucket bounds of Stats.Batch (ops) and Stats.CommitNanos.
var (
	batchBounds  = []uint64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000}
	commitBounds = []uint64{
		100e3, 250e3, 500e3, 1e6, 2.5e6, 5e6, 10e6, 25e6, 50e6, 100e6, 250e6, 1e9,
	}
)

// DB is an open ccsd database. It is safe for concurrent use.
type DB struct {
	bolt *bbolt.DB
	opts Options

	// mu guards closed and the send side of reqs: submitters hold it for
	// reading while they hand an op over, Close holds it for writing to
	// close reqs, so nobody ever sends on a closed channel.
	mu     sync.RWMutex
	closed bool
	reqs   chan *op
	done   chan struct{} // closed when the committer has exited

	usage *upstreamUsage

	isClosed atomic.Bool
	commits  atomic.Uint64
	ops      atomic.Uint64
	failures atomic.Uint64
	batch    *stats.Histogram // ops per successful commit
	latency  *stats.Histogram // nanoseconds per commit
	pageSize uint64
	health   commitHealth // see LastCommitErr
}

// Bucket names. See doc.go for the key and value layout of each.
var (
	bucketMeta     = []byte("meta")
	bucketSenders  = []byte("senders")
	bucketDevices  = []byte("devices")
	bucketRegs     = []byte("regs")
	bucketRegIndex = []byte("regidx")
	bucketQueues   = []byte("queues")
	bucketCollapse = []byte("collapse")
	bucketUpstream = []byte("upstream")
	bucketDedup    = []byte("dedup")
	bucketExpiry   = []byte("expiry")
	// bucketDevCreated indexes devices by creation time for SweepDevices.
	// Open creates it in a schema 1 database that lacks it.
	bucketDevCreated = []byte("devcreated")
	// bucketTombstones lists each device's tombstones, oldest first, so
	// they are bounded per device and go with the device.
	bucketTombstones = []byte("tombstones")
	// bucketRegQueued: regID → be64 count of its queued messages without a
	// collapse key (see regqueued.go).
	bucketRegQueued = []byte("regqueued")
	// bucketRegCollapse: part(regID) be64(seq) → deviceID, the queued
	// messages with a collapse key of each registration, oldest first
	// (see regcollapse.go).
	bucketRegCollapse = []byte("regcollapse")
	// bucketQExpiry and bucketQExpiryDev hold each device's lower bound of
	// its queued messages' expiry times (see qexpiry.go).
	bucketQExpiry    = []byte("qexpiry")
	bucketQExpiryDev = []byte("qexpirydev")

	keyVersion = []byte("version")
	// keyRegQueued marks a database whose regqueued counts are built.
	keyRegQueued = []byte("regqueued")
	// keyRegCollapse marks a database whose regcollapse index is built.
	keyRegCollapse = []byte("regcollapse")
)

var allBuckets = [][]byte{
	bucketMeta, bucketSenders, bucketDevices, bucketRegs, bucketRegIndex,
	bucketQueues, bucketCollapse, bucketUpstream, bucketDedup, bucketExpiry,
	bucketDevCreated, bucketTombstones, bucketRegQueued, bucketRegCollapse,
	bucketTopicSubs, bucketRegTopics, bucketTopicJobs, bucketQExpiry, bucketQExpiryDev,
}

// Open opens or creates the database at path, creating its buckets and
// recording the schema version. It refuses a database written by a newer
// schema, and returns ErrLocked if the file stays locked for
// opts.LockTimeout.
func Open(path string, opts Options) (*DB, error) {
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 1000
	}
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.CommitDelay < 0 {
		opts.CommitDelay = 0
	}
	prefetchForWalk(path) // after a crash: see prefetch.go
	bdb, err := bbolt.Open(path, 0o600, &bbolt.Options{
		Timeout:        opts.LockTimeout,
		FreelistType:   bbolt.FreelistMapType,
		NoFreelistSync: true,
	})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("store: open %s: %w", path, store.ErrLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	if err := initSchema(bdb); err != nil {
		bdb.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	usage, err := loadUpstreamUsage(bdb)
	if err != nil {
		bdb.Close()
		return nil, fmt.Errorf("store: open %s: count upstream queues: %w", path, err)
	}
	db := &DB{
		bolt:     bdb,
		opts:     opts,
		reqs:     make(chan *op, opts.MaxBatch),
		done:     make(chan struct{}),
		usage:    usage,
		batch:    stats.NewHistogram(batchBounds...),
		latency:  stats.NewHistogram(commitBounds...),
		pageSize: uint64(bdb.Info().PageSize),
	}
	usages.Store(bdb, usage)
	go db.committer()
	return db, nil
}

func initSchema(bdb *bbolt.DB) error {
	return bdb.Update(func(tx *bbolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		meta := tx.Bucket(bucketMeta)
		v := meta.Get(keyVersion)
		if v == nil {
			if err := meta.Put(keyVersion, binary.BigEndian.AppendUint32(nil, SchemaVersion)); err != nil {
				return err
			}
			return buildIndexes(tx)
		}
		if len(v) != 4 {
			return fmt.Errorf("schema version record is %d bytes: %w", len(v), errCorrupt)
		}
		got := binary.BigEndian.Uint32(v)
		if got < oldestSchema || got > SchemaVersion {
			return fmt.Errorf("schema version %d is not supported by this build (it knows versions %d to %d); use a newer ccsd", got, oldestSchema, SchemaVersion)
		}
		if got < SchemaVersion {
			if err := meta.Put(keyVersion, binary.BigEndian.AppendUint32(nil, SchemaVersion)); err != nil {
				return err
			}
		}
		return buildIndexes(tx)
	})
}

// buildIndexes builds, once, the indexes a file written before they existed
// lacks.
func buildIndexes(tx *bbolt.Tx) error {
	if err := countRegQueued(tx); err != nil {
		return err
	}
	return buildRegCollapse(tx)
}

// Close stops accepting writes, commits the writes already queued, and
// closes the file. Writes submitted after Close return ErrClosed. Close is
// idempotent.
func (db *DB) Close() error {
	db.mu.Lock()
	if db.closed {
		db.mu.Unlock()
		return nil
	}
	db.closed = true
	close(db.reqs)
	db.mu.Unlock()
	<-db.done
	ferr := db.syncFreelist()
	db.isClosed.Store(true)
	usages.Delete(db.bolt)
	if err := db.bolt.Close(); err != nil {
		return fmt.Errorf("store: close: %w", err)
	}
	return ferr
}

// syncFreelist writes bbolt's freelist once, in one last empty commit,
// after the committer has stopped. Commits run with NoFreelistSync (a
// freelist write per commit costs O(free pages), which after a large queue
// drained is megabytes per commit); without a freelist on disk, bbolt
// rebuilds it at open by reading every page of the file, seconds per
// gigabyte when the file is not cached. Written at Close, the next Open
// reads it instead (one page run) and the first commit after it drops it
// again. After a crash there is none and Open walks the file, as before.
// It runs when no other write can: the committer has exited, and readers
// never read the flag.
func (db *DB) syncFreelist() error {
	db.bolt.NoFreelistSync = false
	if err := db.bolt.Update(func(*bbolt.Tx) error { return nil }); err != nil {
		return fmt.Errorf("store: close: write the freelist: %w", err)
	}
	return nil
}

// appendFill is the FillPercent of the buckets whose keys are written in
// increasing order (the queues by Seq, the expiry index by time): bbolt
// splits a full page at FillPercent of its size, and its default of 0.5
// leaves every page behind an append half empty, doubling the file; at 1.0
// each page is filled before the next starts. Keys inserted out of order
// still work, with fuller pages that split again sooner.
const appendFill = 1.0

// appending sets b's FillPercent for appends (appendFill) and returns it.
// bbolt keeps one Bucket per name in a write transaction, so one call per
// transaction before its commit is enough; every put path calls it.
func appending(b *bbolt.Bucket) *bbolt.Bucket {
	b.FillPercent = appendFill
	return b
}

// Stats returns the committer's counters. Ops/Commits is the average batch
// size, the measure of group commit. It is cheap (atomic loads, bbolt's
// stats lock, the usage table's mutex): fit for every scrape.
func (db *DB) Stats() Stats {
	bs := db.bolt.Stats()
	commits := db.commits.Load()
	return Stats{
		Commits:      commits,
		Ops:          db.ops.Load(),
		Failures:     db.failures.Load(),
		Batch:        db.batch.Snapshot(),
		CommitNanos:  db.latency.Snapshot(),
		WrittenBytes: uint64(bs.TxStats.GetPageAlloc()) + commits*db.pageSize,
		PageWrites:   uint64(bs.TxStats.GetWrite()),
		Upstream:     db.usage.total(),
	}
}

// view runs fn in a read-only transaction. It is the read helper for every
// file of this package.
func (db *DB) view(fn func(tx *bbolt.Tx) error) error {
	if db.isClosed.Load() {
		return store.ErrClosed
	}
	err := db.bolt.View(fn)
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return store.ErrClosed
	}
	return err
}

// update runs fn in a write transaction through the group committer and
// returns once the transaction is fsynced (or fn failed). fn may run more
// than once (see doc.go, "Failure isolation"), so it must set captured
// results afresh on each run. An error returned by fn fails only this op: its
// writes are undone and the other ops of the batch commit. If fn fails
// before writing anything it may return clean(err) to spare the batch a
// re-run.
func (db *DB) update(ctx context.Context, fn func(tx *bbolt.Tx) error) error {
	o, err := db.submit(ctx, fn)
	if err != nil {
		return err
	}
	return o.wait(ctx)
}

// submit hands fn to the committer and returns without waiting for the
// commit. The committer takes requests in channel order, so writes submitted
// one after another by one goroutine commit in that order (in the same
// batch or in later ones).
func (db *DB) submit(ctx context.Context, fn func(tx *bbolt.Tx) error) (*op, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	o := &op{fn: fn, done: make(chan error, 1)}
	db.mu.RLock()
	if db.closed {
		db.mu.RUnlock()
		return nil, store.ErrClosed
	}
	select {
	case db.reqs <- o:
		db.mu.RUnlock()
		return o, nil
	case <-ctx.Done():
		db.mu.RUnlock()
		return nil, ctx.Err()
	}
}

// wait returns the outcome of a submitted op. If ctx ends first and the
// committer has not taken the op yet, nothing is written and ctx's error is
// returned; once taken, wait reports the true outcome, so a nil error always
// means durable and an error means nothing written.
func (o *op) wait(ctx context.Context) error {
	select {
	case err := <-o.done:
		return err
	case <-ctx.Done():
		if o.state.CompareAndSwap(opWaiting, opCancelled) {
			return ctx.Err()
		}
		return <-o.done
	}
}

// write is this backend's store.Write: an op handed to the group committer
// by an ...Async method. Writes submitted one after another by one
// goroutine commit in that order; each still shares its fsync with
// whatever else is waiting.
type write struct {
	o     *op
	err   error
	label string
}

// Wait returns the write's outcome once its transaction is fsynced: nil
// means durable.
func (w *write) Wait(ctx context.Context) error {
	err := w.err
	if err == nil {
		err = w.o.wait(ctx)
	}
	if err != nil {
		return fmt.Errorf("store: %s: %w", w.label, err)
	}
	return nil
}
