// Package storetest is the store contract suite: one set of tests that
// pins the semantics ccsd (fanout, auth, groups) relies on, run against
// any store.Backend through its constructor. store/bolt and store/memstore
// run it from their tests; a new backend (NATS JetStream, say) is done when
// it passes.
//
//	func TestContract(t *testing.T) {
//		storetest.Run(t, func(t *testing.T, opts store.Options) store.Backend {
//			return mybackend.Open(t.TempDir(), opts)
//		})
//	}
//
// Every test opens its own backend with a fake clock in opts.Now that
// starts at Epoch and moves only when the test says so; the suite closes
// the backend at the end of the test.
package storetest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/ccsd/ccsd/store"
)

// Opener opens a fresh, empty backend for one test, using opts (its Now
// must be the backend's clock).
type Opener func(t *testing.T, opts store.Options) store.Backend

// Check is run on a backend at the end of each test, before Close, unless
// the test failed or closed it: a backend's own invariants (store/bolt
// checks its indexes).
type Check func(t *testing.T, b store.Backend)

// Epoch is where the fake clock of every test starts.
var Epoch = time.UnixMilli(1_700_000_000_000)

// Clock is the fake clock handed to the backend.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// ms is the clock's time in unix milliseconds.
func (c *Clock) ms() int64 { return c.Now().UnixMilli() }

// env is what one test gets: the backend, its clock, a context.
type env struct {
	db  store.Backend
	clk *Clock
	ctx context.Context
}

type test struct {
	name string
	fn   func(t *testing.T, e *env)
}

// Run runs the whole suite, each test as a subtest of t.
func Run(t *testing.T, open Opener) { RunChecked(t, open, nil) }

// RunChecked is Run with check run at the end of each test.
func RunChecked(t *testing.T, open Opener, check Check) {
	var all []test
	for _, part := range [][]test{identityTests, queueTests, upstreamTests, groupTests, topicTests, serviceAccountTests, contractTests, asyncTests, laneTests} {
		all = append(all, part...)
	}
	for _, tc := range all {
		t.Run(tc.name, func(t *testing.T) {
			clk := &Clock{now: Epoch}
			db := open(t, store.Options{Now: clk.Now})
			t.Cleanup(func() {
				if check != nil && !t.Failed() && !errors.Is(db.LastCommitErr(), store.ErrClosed) {
					check(t, db)
				}
				db.Close()
			})
			tc.fn(t, &env{db: db, clk: clk, ctx: context.Background()})
		})
	}
}

// msg is a message of sender s1 for reg on dev.
func msg(dev, reg, id string) store.Message {
	return store.Message{DeviceID: dev, RegID: reg, SenderID: "s1", MessageID: id, Payload: []byte(`{"id":"` + id + `"}`)}
}

// ids lists the MessageIDs of ms in order.
func ids(ms []store.Message) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.MessageID)
	}
	return out
}
