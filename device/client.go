package device

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"
)

// Client is one device. Its methods may be called from several goroutines;
// Run runs once at a time.
type Client struct {
	cfg  Config
	http *http.Client

	regMu sync.Mutex // serialises checkin, register and unregister
	// handling is held while the handler runs and its answer is written:
	// a session closed because Run's context ended first waits for it, so
	// the message in progress is acked before the stream ends.
	handling sync.Mutex

	mu      sync.Mutex
	state   State
	sess    *session      // the live session, nil while offline
	online  chan struct{} // closed while sess != nil
	running bool
	pending map[string]*pendingSend // upstream messages waiting for their answer

	window chan struct{} // upstream slots: UpstreamWindow
	seen   *dedup        // only the handler goroutine uses it
}

// New returns a client for cfg, with the device of cfg.StateFile if that
// file exists. It does no network call.
func New(cfg Config) (*Client, error) {
	cfg = cfg.withDefaults()
	s, err := loadState(cfg.StateFile)
	if err != nil {
		return nil, err
	}
	return &Client{
		cfg:     cfg,
		http:    newHTTPClient(&cfg),
		state:   s,
		online:  make(chan struct{}),
		pending: map[string]*pendingSend{},
		window:  make(chan struct{}, UpstreamWindow),
		seen:    newDedup(cfg.DedupWindow),
	}, nil
}

// State returns a copy of the device's identity and registrations.
func (c *Client) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state.clone()
}

// update changes the state and saves it; on a failed save the state in
// memory is not changed either, so memory and file agree.
func (c *Client) update(fn func(*State)) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	next := c.state.clone()
	fn(&next)
	if err := saveState(c.cfg.StateFile, next); err != nil {
		return err
	}
	c.state = next
	return nil
}

// Online returns a channel closed while a session is up (bound), so that
// a caller can wait for the device to be reachable.
func (c *Client) Online() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.online
}

// Run holds the device's session until ctx is cancelled: it connects,
// hands every downstream message to the Handler, keeps the session alive,
// and reconnects after any failure, waiting between attempts with
// exponential backoff and jitter. It returns ctx's error once cancelled
// (after the handler in progress returned and its message was answered),
// ErrNotCheckedIn before any Register, and ErrUnauthorized or ErrReplaced
// when ccsd refuses the device for good.
func (c *Client) Run(ctx context.Context) error {
	c.mu.Lock()
	if c.running {
		c.mu.Unlock()
		return errors.New("device: Run is already running")
	}
	c.running = true
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.running = false
		c.mu.Unlock()
	}()
	if !c.State().checkedIn() {
		return ErrNotCheckedIn
	}
	in := make(chan delivery, deliveryBuffer)
	handled := make(chan struct{})
	go c.handleLoop(ctx, in, handled)
	defer func() {
		close(in)
		<-handled
	}()
	return c.connectLoop(ctx, in)
}

// connectLoop makes one session after another, with backoff between them.
func (c *Client) connectLoop(ctx context.Context, in chan<- delivery) error {
	attempt := 0
	for {
		online, err := c.session(ctx, in)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, ErrUnauthorized) || errors.Is(err, ErrReplaced) {
			return err
		}
		if c.cfg.OnDisconnect != nil {
			c.cfg.OnDisconnect(err)
		}
		if online {
			attempt = 0
		}
		wait := backoff(c.cfg.MinBackoff, c.cfg.MaxBackoff, attempt, rand.Float64())
		attempt++
		c.cfg.Logger.Info("session ended; reconnecting", "error", err, "in", wait.Round(time.Millisecond))
		if err := sleep(ctx, wait); err != nil {
			return err
		}
	}
}

// backoff is the wait before reconnection attempt n (from 0): a random
// fraction r of min(maxD, minD * 2^n), but at least minD/2, so that a
// server kicking every login out at once is not hammered.
func backoff(minD, maxD time.Duration, n int, r float64) time.Duration {
	d := maxD
	if n < 32 && minD<<n < maxD && minD<<n > 0 {
		d = minD << n
	}
	return max(time.Duration(r*float64(d)), minD/2)
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// deliveryBuffer is the room between the reader and the handler: more
// than ccsd's window of 100 unacked messages per session, so the reader
// never waits for the handler and answers to upstream messages and pings
// are read while the handler works.
const deliveryBuffer = 2 * UpstreamWindow

// delivery is a downstream message and the session to ack it on.
type delivery struct {
	s *session
	m *Message
}

// handleLoop calls the handler for each delivery, in order, and acks (or
// nacks) it on its session. A message already handled is acked again
// without calling the handler.
func (c *Client) handleLoop(ctx context.Context, in <-chan delivery, done chan<- struct{}) {
	defer close(done)
	for d := range in {
		c.handling.Lock()
		c.handle(ctx, d)
		c.handling.Unlock()
	}
}

// handle hands one delivery to the handler (unless it is a duplicate) and
// answers it.
func (c *Client) handle(ctx context.Context, d delivery) {
	if ctx.Err() != nil {
		return // not acked: ccsd offers it again next time
	}
	key := d.m.To + "\x00" + d.m.ID
	if c.seen.has(key) {
		c.cfg.Logger.Debug("dropped a message delivered again (acking it again)", "message_id", d.m.ID)
		d.s.answer(d.m.ID, "ack")
		return
	}
	if err := c.cfg.Handler.HandleMessage(ctx, d.m); err != nil {
		c.cfg.Logger.Warn("handler failed; nacking, ccsd will offer the message again next session", "message_id", d.m.ID, "error", err)
		d.s.answer(d.m.ID, "nack")
		return
	}
	c.seen.add(key)
	d.s.answer(d.m.ID, "ack")
}

// setOnline records s as the live session and wakes its waiters; offline
// undoes it.
func (c *Client) setOnline(s *session) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sess = s
	close(c.online)
}

// current waits for a live session.
func (c *Client) current(ctx context.Context) (*session, error) {
	for {
		c.mu.Lock()
		s, online := c.sess, c.online
		c.mu.Unlock()
		if s != nil {
			return s, nil
		}
		select {
		case <-online:
		case <-ctx.Done():
			return nil, fmt.Errorf("device: waiting for a session: %w", ctx.Err())
		}
	}
}
