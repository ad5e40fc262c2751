package fanout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ccsd/ccsd/store"
	"github.com/ccsd/ccsd/store/bolt"
)

// fakeConn is a Conn that records what fanout writes to it, in order.
// onSend, if set, runs inside Send, as a peer that reacts the moment a
// stanza is queued for it would (fanout may hold a lock there: onSend must
// not wait for fanout).
type fakeConn struct {
	id     string
	onSend func(payload []byte)

	mu      sync.Mutex
	sent    []map[string]any
	raw     []string // the payloads of sent, verbatim
	kinds   []Kind   // the kind of each
	bounces []string // the texts of Bounce
	closes  []Reason // the reasons of Close
	// closedAfter is len(sent) at the first Close: what the peer had been
	// sent when its stream ended.
	closedAfter int
	sendErr     error // returned by Send once set (the stream is going away)
}

func (c *fakeConn) Identity() string { return c.id }

// ID is unique per fakeConn: its address.
func (c *fakeConn) ID() string { return fmt.Sprintf("conn-%p", c) }

func (c *fakeConn) Remote() string { return "127.0.0.1:1" }

func (c *fakeConn) Send(payload []byte, k Kind) error {
	var v map[string]any
	if err := json.Unmarshal(payload, &v); err != nil {
		return err
	}
	c.mu.Lock()
	if c.sendErr != nil {
		c.mu.Unlock()
		return c.sendErr
	}
	c.sent = append(c.sent, v)
	c.raw = append(c.raw, string(payload))
	c.kinds = append(c.kinds, k)
	c.mu.Unlock()
	if c.onSend != nil {
		c.onSend(payload)
	}
	return nil
}

func (c *fakeConn) Bounce(_ string, _ []byte, text string) error {
	c.mu.Lock()
	c.bounces = append(c.bounces, text)
	c.mu.Unlock()
	return nil
}

func (c *fakeConn) Close(why Reason) {
	c.mu.Lock()
	if len(c.closes) == 0 {
		c.closedAfter = len(c.sent)
	}
	c.closes = append(c.closes, why)
	c.mu.Unlock()
}

// messages returns a copy of what was sent so far.
func (c *fakeConn) messages() []map[string]any {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]map[string]any(nil), c.sent...)
}

// payloads returns the verbatim payloads sent so far.
func (c *fakeConn) payloads() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.raw...)
}

// types returns the kind of every stanza sent so far.
func (c *fakeConn) types() []Kind {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Kind(nil), c.kinds...)
}

// closed returns the reasons Close was called with.
func (c *fakeConn) closed() []Reason {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Reason(nil), c.closes...)
}

// ids returns the message_id of every stanza sent so far.
func (c *fakeConn) ids() []string {
	var out []string
	for _, m := range c.messages() {
		id, _ := m["message_id"].(string)
		out = append(out, id)
	}
	return out
}

// waitFor polls until cond holds or fails the test after 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitSent waits until c has been sent exactly the stanzas whose message_ids
// are want, in that order, and fails at once if what it got so far is not a
// prefix of want.
func waitSent(t *testing.T, c *fakeConn, want ...string) {
	t.Helper()
	waitFor(t, c.id+" sent "+strconv.Quote(joinIDs(want)), func() bool {
		got := c.ids()
		if len(got) > len(want) || !slices.Equal(got, want[:len(got)]) {
			t.Fatalf("%s was sent %q, want %q", c.id, got, want)
		}
		return len(got) == len(want)
	})
}

func joinIDs(ids []string) string {
	b, _ := json.Marshal(ids)
	return string(b)
}

// wantPayload fails unless the i-th stanza sent on c is exactly want, of
// kind typ.
func wantPayload(t *testing.T, c *fakeConn, i int, typ Kind, want string) {
	t.Helper()
	p, ty := c.payloads(), c.types()
	if i >= len(p) {
		t.Fatalf("%s: stanza %d not sent (%d were)", c.id, i, len(p))
	}
	if p[i] != want || ty[i] != typ {
		t.Fatalf("%s: stanza %d is kind %d %s\nwant kind %d %s", c.id, i, ty[i], p[i], typ, want)
	}
}

// streamRouter is a router over newTestStore's data (sender 123, devices
// dev0.. with registrations reg0.., group APA91bTESTKEY of them all)
// through a hookStore, with a fake clock.
func streamRouter(t *testing.T, n int, cfg Config) (*Router, *hookStore, *fakeClock) {
	t.Helper()
	db, _ := newTestStore(t, n)
	hs := &hookStore{Store: db, db: db}
	clk := &fakeClock{t: time.Now()}
	cfg.Store, cfg.Now = hs, clk.now
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r, hs, clk
}

// hookStore is the real store with hooks in the calls whose timing the
// stream races depend on.
type hookStore struct {
	Store
	db *bolt.DB

	mu sync.Mutex
	// afterPendingUpstream, if set, runs after each upstream read, before
	// the hub sees its result, until it returns true: what happens there
	// happens while dispatch is reading.
	afterPendingUpstream func(ups []store.Upstream) bool
	// ackGate, if set, holds every AckUpstream until it is closed.
	ackGate  chan struct{}
	upAcks   int // AckUpstream calls
	upAckErr []error
	copies   int // device copies submitted in EnqueueAsync writes
	acks     int // AckAsync calls
	// pendingGate, if set, holds every device queue read until it is
	// closed: a delivery read that takes as long as the test wants.
	pendingGate chan struct{}
}

func (s *hookStore) Pending(dev string, after uint64, limit int, nowMs int64) ([]store.Message, error) {
	s.mu.Lock()
	gate := s.pendingGate
	s.mu.Unlock()
	if gate != nil {
		<-gate
	}
	return s.Store.Pending(dev, after, limit, nowMs)
}

func (s *hookStore) EnqueueAsync(ctx context.Context, e *store.Enqueue) store.Write {
	s.mu.Lock()
	s.copies += len(e.Messages)
	s.mu.Unlock()
	return s.Store.EnqueueAsync(ctx, e)
}

func (s *hookStore) AckAsync(ctx context.Context, dev string, seq uint64, receipt *store.Upstream) store.Write {
	s.mu.Lock()
	s.acks++
	s.mu.Unlock()
	return s.Store.AckAsync(ctx, dev, seq, receipt)
}

// writes returns how many device copies were submitted for the queue and
// how many device acks were.
func (s *hookStore) writes() (copies, acks int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.copies, s.acks
}

func (s *hookStore) PendingUpstream(sender string, after uint64, limit int, nowMs int64) ([]store.Upstream, error) {
	ups, err := s.Store.PendingUpstream(sender, after, limit, nowMs)
	s.mu.Lock()
	hook := s.afterPendingUpstream
	s.mu.Unlock()
	if hook != nil && hook(ups) {
		s.mu.Lock()
		s.afterPendingUpstream = nil
		s.mu.Unlock()
	}
	return ups, err
}

func (s *hookStore) AckUpstreamAsync(ctx context.Context, sender string, seq uint64) store.Write {
	s.mu.Lock()
	gate := s.ackGate
	s.mu.Unlock()
	return &gatedWrite{gate: gate, submit: func(fn func(error)) {
		// Counted in the store's callback, so in commit order.
		s.Store.AckUpstreamAsync(ctx, sender, seq).Then(func(err error) {
			s.mu.Lock()
			s.upAcks++
			s.upAckErr = append(s.upAckErr, err)
			s.mu.Unlock()
			fn(err)
		})
	}}
}

// gatedWrite submits its write only once gate (if any) is closed: a
// commit that takes as long as the test wants.
type gatedWrite struct {
	gate   chan struct{}
	submit func(fn func(error))
}

func (g *gatedWrite) Wait(ctx context.Context) error {
	got := make(chan error, 1)
	g.Then(func(err error) { got <- err })
	return <-got
}

func (g *gatedWrite) Then(fn func(error)) {
	if g.gate == nil {
		g.submit(fn)
		return
	}
	go func() {
		<-g.gate
		g.submit(fn)
	}()
}

// upstreamIDs returns the message_ids in sender 123's upstream queue.
func (s *hookStore) upstreamIDs(t *testing.T) []string {
	t.Helper()
	ups, err := s.db.PendingUpstream("123", 0, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, u := range ups {
		ids = append(ids, u.MessageID)
	}
	return ids
}

// stallCommits holds the store's committer inside a transaction until the
// returned release is called, so that writes submitted meanwhile are queued
// but not yet durable: a slow disk. It uses a group update because its
// callback runs inside the write transaction.
func stallCommits(t *testing.T, db *bolt.DB) (release func()) {
	t.Helper()
	in, out := make(chan struct{}, 1), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := db.UpdateGroup(context.Background(), "APA91bTESTKEY", func(*store.Group) error {
			select {
			case in <- struct{}{}:
			default: // a re-run
			}
			<-out
			return errors.New("stalled")
		})
		done <- err
	}()
	<-in
	var once sync.Once
	release = func() {
		once.Do(func() {
			close(out)
			<-done
		})
	}
	t.Cleanup(release)
	return release
}
