package bolt

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"go.etcd.io/bbolt"

	"github.com/ccsd/ccsd/store"
)

// Completion callbacks (store.Write.Then) and the asynchronous acks.
//
// A caller that pipelines writes used to park one goroutine per write in
// Wait. Then instead leaves a callback on the op; the committer hands the
// ops of each batch, in commit order, to one dispatcher goroutine that
// calls them, so the committer goes on to the next batch at once and no
// goroutine exists per write.

// then is the callback half of an op.
type then struct {
	cb    func(error)
	errf  labeler // wraps the outcome as the write's Wait would
	res   error   // the outcome, set by finish
	phase atomic.Int32
}

const (
	thenNone     int32 = iota // neither finished nor a callback yet
	thenFinished              // finished first: Then calls cb itself
	thenSet                   // callback set first: finish dispatches it
)

// labeler wraps a raw op outcome in the error its write reports.
type labeler interface{ wrapErr(err error) error }

// finish answers o with its outcome: on done for Wait, and through disp
// for a callback Then has set. It is called once, by the committer.
func (o *op) finish(err error, disp *dispatcher) {
	o.res = err
	o.done <- err
	if o.phase.CompareAndSwap(thenNone, thenFinished) {
		return
	}
	disp.pending = append(disp.pending, o)
}

// setThen registers fn; if o already finished, fn runs now, on the
// caller's goroutine.
func (o *op) setThen(fn func(error), l labeler) {
	o.cb, o.errf = fn, l
	if o.phase.CompareAndSwap(thenNone, thenSet) {
		return
	}
	fn(l.wrapErr(o.res))
}

// Then implements store.Write.
func (w *write) Then(fn func(error)) {
	if w.o == nil {
		fn(w.wrapErr(w.err))
		return
	}
	w.o.setThen(fn, w)
}

func (w *write) wrapErr(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("store: %s: %w", w.label, err)
}

// dispatcher is the goroutine that runs the callbacks of finished ops, in
// the order the committer finished them.
type dispatcher struct {
	pending []*op // finished in the current batch; committer only

	mu     sync.Mutex
	queue  []*op
	wake   chan struct{}
	quit   chan struct{}
	exited chan struct{}
}

func startDispatcher() *dispatcher {
	d := &dispatcher{wake: make(chan struct{}, 1), quit: make(chan struct{}), exited: make(chan struct{})}
	go d.run()
	return d
}

// flush hands the callbacks of the batch just answered to the goroutine.
// The queue is unbounded, so the committer never waits for a callback (a
// callback may itself submit a write, which waits for the committer).
func (d *dispatcher) flush() {
	if len(d.pending) == 0 {
		return
	}
	d.mu.Lock()
	d.queue = append(d.queue, d.pending...)
	d.mu.Unlock()
	clear(d.pending)
	d.pending = d.pending[:0]
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

func (d *dispatcher) run() {
	defer close(d.exited)
	var spare []*op
	for {
		d.mu.Lock()
		ops := d.queue
		d.queue = spare[:0]
		d.mu.Unlock()
		for _, o := range ops {
			o.cb(o.errf.wrapErr(o.res))
		}
		clear(ops)
		spare = ops
		if len(ops) > 0 {
			continue
		}
		select {
		case <-d.wake:
		case <-d.quit:
			d.mu.Lock()
			left := len(d.queue)
			d.mu.Unlock()
			if left == 0 {
				return
			}
		}
	}
}

// stop waits until every callback handed over has run; called by the
// committer when it exits, before Close returns.
func (d *dispatcher) stop() {
	close(d.quit)
	<-d.exited
}

// ackWrite is the store.Write of AckAsync and AckUpstreamAsync; its label
// is rendered only for an error.
type ackWrite struct {
	o    *op
	err  error
	kind string
	id   string
	seq  uint64
}

func (w *ackWrite) wrapErr(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("store: %s %s/%d: %w", w.kind, w.id, w.seq, err)
}

// Wait implements store.Write.
func (w *ackWrite) Wait(ctx context.Context) error {
	err := w.err
	if err == nil {
		err = w.o.wait(ctx)
	}
	return w.wrapErr(err)
}

// Then implements store.Write.
func (w *ackWrite) Then(fn func(error)) {
	if w.o == nil {
		fn(w.wrapErr(w.err))
		return
	}
	w.o.setThen(fn, w)
}

// AckAsync is Ack without the wait (and without the deleted message): the
// same write, submitted in order with the other asynchronous writes.
func (db *DB) AckAsync(ctx context.Context, deviceID string, seq uint64, receipt *store.Upstream) store.Write {
	w := &ackWrite{kind: "ack", id: deviceID, seq: seq}
	if receipt != nil && receipt.SenderID == "" {
		w.err = errors.New("receipt has no sender id")
		return w
	}
	var rv []byte
	if receipt != nil {
		rv = encodeUpstream(receipt)
	}
	// The same transaction as Ack's (queue.go), without decoding the
	// message nobody reads.
	w.o, w.err = db.submit(ctx, func(tx *bbolt.Tx) error {
		err := dropMessage(tx, deviceID, seq)
		if errors.Is(err, store.ErrNotFound) {
			return clean(err)
		}
		if err != nil || receipt == nil {
			return err
		}
		return pushUpstream(tx, receipt, rv)
	})
	return w
}

// AckUpstreamAsync is AckUpstream without the wait.
func (db *DB) AckUpstreamAsync(ctx context.Context, senderID string, seq uint64) store.Write {
	w := &ackWrite{kind: "ack upstream", id: senderID, seq: seq}
	// The same transaction as AckUpstream's (upstream.go).
	w.o, w.err = db.submit(ctx, func(tx *bbolt.Tx) error {
		err := deleteUpstream(tx, senderID, seq)
		if errors.Is(err, store.ErrNotFound) {
			return clean(err)
		}
		return err
	})
	return w
}
