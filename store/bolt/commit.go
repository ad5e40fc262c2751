package bolt

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"go.etcd.io/bbolt"

	"github.com/ccsd/ccsd/store"
)

// op is one write request waiting for the committer.
type op struct {
	fn    func(tx *bbolt.Tx) error
	done  chan error // buffered 1; receives the op's outcome after the commit
	state atomic.Int32
	then  // the callback Write.Then registered, if any (async.go)
}

const (
	opWaiting   int32 = iota // in the channel, may still be cancelled
	opTaken                  // in a batch: its outcome will be sent on done
	opCancelled              // its caller gave up first: the committer drops it
)

// cleanError marks an op failure that happened before the op wrote
// anything, so the transaction can go on without it (see clean).
type cleanError struct{ err error }

func (e cleanError) Error() string { return e.err.Error() }
func (e cleanError) Unwrap() error { return e.err }

// clean marks err as a failure that left the transaction untouched: the op
// checked its preconditions and refused before its first write. The
// committer then fails that op alone and keeps the batch's transaction;
// without the mark it must roll back and re-run the batch without the op.
// Returning clean(err) after a write is a bug that commits the partial
// writes.
func clean(err error) error { return cleanError{err} }

// errRetry aborts a batch transaction after a dirty op failure.
var errRetry = errors.New("store: batch retry")

// committer is the single writer goroutine. It takes every request waiting
// in reqs (up to MaxBatch), runs them in one bbolt transaction, and answers
// each caller after the fsync. While it commits, new requests pile up in the
// channel and form the next batch, so batches grow with load and a lone
// request never waits for a timer.
func (db *DB) committer() {
	defer close(db.done)
	disp := startDispatcher() // runs Write.Then callbacks off this goroutine
	defer disp.stop()
	batch := make([]*op, 0, db.opts.MaxBatch)
	for {
		first, ok := <-db.reqs
		if !ok {
			return
		}
		batch = batch[:0]
		batch = db.take(batch, first)
		open := true
		if db.opts.CommitDelay > 0 && len(batch) < db.opts.MaxBatch {
			open = db.gatherFor(&batch, db.opts.CommitDelay)
		}
	drain:
		for open && len(batch) < db.opts.MaxBatch {
			select {
			case o, ok := <-db.reqs:
				if !ok {
					open = false
					break drain
				}
				batch = db.take(batch, o)
			default:
				break drain
			}
		}
		if len(batch) > 0 {
			db.commit(batch, disp)
		}
		// After Close the channel stays drained by the loop above: the next
		// receive returns !ok once the buffered requests are committed.
	}
}

// take appends o to batch unless its caller already gave up.
func (db *DB) take(batch []*op, o *op) []*op {
	if o.state.CompareAndSwap(opWaiting, opTaken) {
		batch = append(batch, o)
	}
	return batch
}

// gatherFor waits up to d for more requests. It reports false if reqs was
// closed.
func (db *DB) gatherFor(batch *[]*op, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	for len(*batch) < db.opts.MaxBatch {
		select {
		case o, ok := <-db.reqs:
			if !ok {
				return false
			}
			*batch = db.take(*batch, o)
		case <-t.C:
			return true
		}
	}
	return true
}

// commit runs batch in one transaction and answers every op.
//
// Failure isolation: bbolt has no savepoints, so an op that fails after
// writing cannot be undone alone. Ops run in order inside one Update. An op
// failing with clean(err) wrote nothing; it is answered with err and the
// transaction goes on. An op failing any other way (or panicking) aborts the
// transaction, which rolls back everything; that op is answered with its
// error and the batch is re-run without it. Refusals the store expects
// (duplicate, exists, not found) are all clean, so re-runs only happen on
// real faults.
func (db *DB) commit(batch []*op, disp *dispatcher) {
	defer disp.flush()
	if barriersOnly(batch) {
		// Every write taken before them is committed: nothing to write,
		// no transaction and no fsync.
		for _, o := range batch {
			o.finish(nil, disp)
		}
		return
	}
	errs := make([]error, len(batch))
	for len(batch) > 0 {
		failed := -1
		clear(errs[:len(batch)])
		start := time.Now()
		err := db.bolt.Update(func(tx *bbolt.Tx) error {
			for i, o := range batch {
				err := runOp(o.fn, tx)
				if err == nil {
					continue
				}
				var ce cleanError
				if errors.As(err, &ce) {
					errs[i] = ce.err
					continue
				}
				failed, errs[i] = i, err
				return errRetry
			}
			return nil
		})
		if failed >= 0 {
			batch[failed].finish(errs[failed], disp)
			batch = append(batch[:failed], batch[failed+1:]...)
			continue
		}
		if err != nil {
			db.failures.Add(1)
			err = fmt.Errorf("store: commit: %w", err)
			db.health.record(err)
			for _, o := range batch {
				o.finish(err, disp)
			}
			return
		}
		db.latency.Observe(uint64(time.Since(start)))
		db.batch.Observe(uint64(len(batch)))
		db.health.record(nil)
		// Count before answering, so a caller that saw its write succeed
		// also sees it in Stats.
		var ok uint64
		for i := range batch {
			if errs[i] == nil {
				ok++
			}
		}
		db.ops.Add(ok)
		db.commits.Add(1)
		for i, o := range batch {
			o.finish(errs[i], disp)
		}
		return
	}
}

// barriersOnly reports whether every op of batch is a barrier (no fn: an
// empty Enqueue, see EnqueueAsync).
func barriersOnly(batch []*op) bool {
	for _, o := range batch {
		if o.fn != nil {
			return false
		}
	}
	return true
}

// runOp runs fn, turning a panic into an error so one bad op cannot take
// the committer (and every caller waiting on it) down.
func runOp(fn func(tx *bbolt.Tx) error, tx *bbolt.Tx) (err error) {
	if fn == nil { // a barrier
		return nil
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("store: write op panicked: %v", r)
		}
	}()
	return fn(tx)
}

// commitHealth holds the outcome of the last commit, the store's cheap
// health signal: a readiness check reads it with one atomic load and no
// disk access, and only the committer writes it.
type commitHealth struct {
	lastErr atomic.Pointer[error] // nil after a successful commit
}

// record stores the outcome of a commit: err, or nil for a success.
func (h *commitHealth) record(err error) {
	if err == nil {
		h.lastErr.Store(nil)
		return
	}
	h.lastErr.Store(&err)
}

// LastCommitErr returns the error of the last commit if it failed (a full
// disk, an I/O error), or nil if it succeeded or none has run yet; after
// Close it returns ErrClosed. Every caller whose write was in that commit got
// the error too, so a non-nil answer means writes are being refused now. It
// clears with the next successful commit: client writes, or the router's
// periodic sweep on an idle server. A commit that wrote little can succeed on
// a full disk (bbolt reuses free pages in its file), so while the disk stays
// full the signal follows whichever kind of write came last.
func (db *DB) LastCommitErr() error {
	if db.isClosed.Load() {
		return store.ErrClosed
	}
	if p := db.health.lastErr.Load(); p != nil {
		return *p
	}
	return nil
}
