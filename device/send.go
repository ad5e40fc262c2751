package device

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"
)

// NowOrNever as Upstream.TTL sends time_to_live 0: ccsd keeps the message
// only if an app server of the sender is connected.
const NowOrNever time.Duration = -1

// Upstream is a message from the device: to the app servers of a sender
// (Sender), or to the other devices of a device group (NotificationKey).
// Exactly one of the two is set.
type Upstream struct {
	Sender          string // the sender id; "to" becomes SENDER@gcm.googleapis.com
	NotificationKey string // a group this device's registration of Category is a member of
	Category        string // the sending app (required): it finds the registration
	// MessageID is the message's id; empty: Send makes a unique one.
	MessageID string
	// TTL is the message's time_to_live, in whole seconds; 0: ccsd's
	// default of one day; NowOrNever: 0.
	TTL time.Duration
	// CollapseKey, to a group, replaces the members' undelivered message
	// of the same key (a dismissal, docs/device-protocol.md).
	CollapseKey string
	Data        map[string]any
}

// pendingSend is an upstream message written on a session, waiting for
// ccsd's answer.
type pendingSend struct {
	s      *session
	answer chan error // buffered: the reader never waits
}

// idPrefix and idSeq make Send's message ids unique across processes.
var (
	idPrefix = newIDPrefix()
	idSeq    atomic.Uint64
)

func newIDPrefix() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "u-" + hex.EncodeToString(b) + "-"
}

// render returns the JSON payload of u and its message id.
func (u Upstream) render(domain string) ([]byte, string, error) {
	v := map[string]any{"category": u.Category}
	switch {
	case u.Category == "":
		return nil, "", errors.New("device: Upstream.Category (the app) is required")
	case (u.Sender == "") == (u.NotificationKey == ""):
		return nil, "", errors.New("device: set exactly one of Upstream.Sender and Upstream.NotificationKey")
	case u.Sender != "":
		v["to"] = u.Sender + "@" + domain
	default:
		v["to"] = u.NotificationKey
	}
	id := u.MessageID
	if id == "" {
		id = idPrefix + strconv.FormatUint(idSeq.Add(1), 10)
	}
	v["message_id"] = id
	switch {
	case u.TTL == NowOrNever:
		v["time_to_live"] = 0
	case u.TTL > 0:
		v["time_to_live"] = int64(u.TTL / time.Second)
	}
	if u.CollapseKey != "" {
		v["collapse_key"] = u.CollapseKey
	}
	if len(u.Data) > 0 {
		v["data"] = u.Data
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, "", fmt.Errorf("device: encode upstream message: %w", err)
	}
	return b, id, nil
}

// Send sends u and waits for ccsd's answer. It returns the message id and
// nil once ccsd acked the message (it is stored durably for the app
// server, or delivered to the group's devices), a *NackError with the CCS
// code when ccsd refused it, a *StanzaError when ccsd could not read it,
// and ErrConnectionLost when the session ended first (the message may or
// may not be stored: send it again with the same MessageID only if the app
// server tolerates a duplicate). Send waits for Run to have a session, and
// for one of the UpstreamWindow slots ccsd allows unanswered; ctx bounds
// the whole wait.
func (c *Client) Send(ctx context.Context, u Upstream) (string, error) {
	payload, id, err := u.render(c.cfg.Domain)
	if err != nil {
		return "", err
	}
	select {
	case c.window <- struct{}{}:
	case <-ctx.Done():
		return id, fmt.Errorf("device: waiting for room to send %s: %w", id, ctx.Err())
	}
	defer func() { <-c.window }()
	p, err := c.register(ctx, id)
	if err != nil {
		return id, err
	}
	defer c.forget(id, p)
	if err := p.s.c.sendGCM(id, payload); err != nil {
		return id, fmt.Errorf("%w: %w", ErrConnectionLost, err)
	}
	select {
	case err := <-p.answer:
		return id, err
	case <-ctx.Done():
		return id, fmt.Errorf("device: waiting for ccsd's answer to %s: %w", id, ctx.Err())
	}
}

// register waits for a session and records id as waiting on it.
func (c *Client) register(ctx context.Context, id string) (*pendingSend, error) {
	for {
		s, err := c.current(ctx)
		if err != nil {
			return nil, err
		}
		c.mu.Lock()
		if _, dup := c.pending[id]; dup {
			c.mu.Unlock()
			return nil, fmt.Errorf("device: message %s is already being sent", id)
		}
		if c.sess == s { // else it ended meanwhile: wait for the next one
			p := &pendingSend{s: s, answer: make(chan error, 1)}
			c.pending[id] = p
			c.mu.Unlock()
			return p, nil
		}
		c.mu.Unlock()
	}
}

func (c *Client) forget(id string, p *pendingSend) {
	c.mu.Lock()
	if c.pending[id] == p {
		delete(c.pending, id)
	}
	c.mu.Unlock()
}

// resolve hands ccsd's answer to the Send waiting for id on s.
func (c *Client) resolve(s *session, id string, err error) {
	c.mu.Lock()
	p := c.pending[id]
	if p != nil && p.s == s {
		delete(c.pending, id)
	} else {
		p = nil
	}
	c.mu.Unlock()
	if p != nil {
		p.answer <- err
	}
}

// offline records that s ended: Sends waiting on it get ErrConnectionLost.
// It is one critical section with the session's removal, so that a Send
// registers on a live session or sees it gone, never in between.
func (c *Client) offline(s *session) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sess == s {
		c.sess = nil
		c.online = make(chan struct{})
	}
	for id, p := range c.pending {
		if p.s == s {
			delete(c.pending, id)
			p.answer <- ErrConnectionLost
		}
	}
}
