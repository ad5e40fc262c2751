package device

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// closeWait is how long a session closed by its context waits for ccsd
// to end the stream too.
const closeWait = 2 * time.Second

// session is one live XMPP session.
type session struct {
	c    *conn
	log  func(msg string, args ...any)
	done chan struct{} // closed when the session ended
}

// answer acks or nacks a downstream message on the session. A failure is
// not reported: the session is then gone, and ccsd offers the message
// again on the next one.
func (s *session) answer(id, typ string) {
	b, _ := json.Marshal(map[string]string{"message_type": typ, "message_id": id})
	if err := s.c.sendGCM("", b); err != nil {
		s.log("could not answer a message; it comes again next session", "message_id", id, "error", err)
	}
}

// session makes one session and reads it until it ends. online says
// whether it got as far as bound.
func (c *Client) session(ctx context.Context, in chan<- delivery) (online bool, err error) {
	addrs, err := c.cfg.locate()
	if err != nil {
		return false, err
	}
	xc, err := dialXMPP(ctx, &c.cfg, addrs.Device, c.State())
	if err != nil {
		return false, err
	}
	s := &session{c: xc, log: c.cfg.Logger.Info, done: make(chan struct{})}
	c.cfg.Logger.Info("online", "addr", addrs.Device, "jid", xc.jid)
	c.setOnline(s)
	stop := context.AfterFunc(ctx, func() {
		// ctx is done, so the handler takes no new message: wait for the
		// one in progress to be answered, then end the stream.
		c.handling.Lock()
		c.handling.Unlock() //nolint:staticcheck // a barrier, not a critical section
		xc.close(closeWait)
	})
	go c.keepalive(s)
	err = c.readLoop(s, in)
	stop()
	close(s.done)
	c.offline(s)
	xc.tls.Close()
	return true, err
}

// readLoop reads the session's stanzas until it ends.
func (c *Client) readLoop(s *session, in chan<- delivery) error {
	var e element
	for {
		if err := s.c.readElement(&e); err != nil {
			return fmt.Errorf("device: session ended: %w", err)
		}
		switch {
		case e.name == "error" && e.space == "http://etherx.jabber.org/streams":
			return streamError(e.child)
		case e.name == "message" && e.typ == "error":
			c.resolve(s, e.id, &StanzaError{MessageID: e.id, Text: string(e.text)})
		case e.name == "message" && e.hasGCM:
			c.onGCM(s, e.payload, in)
		case e.name == "iq" && e.typ == "get":
			_ = s.c.write(`<iq type="result" id="` + escape(e.id, true) + `"/>`)
		}
	}
}

// streamError maps the stream error that ended a session to the error Run
// acts on.
func streamError(cond string) error {
	switch cond {
	case "conflict":
		return ErrReplaced
	case "not-authorized":
		return ErrUnauthorized
	}
	return &StreamError{Condition: cond}
}

// onGCM acts on one CCS JSON stanza from ccsd: the answer to an upstream
// message, or a downstream message for the handler.
func (c *Client) onGCM(s *session, payload []byte, in chan<- delivery) {
	w, err := parseWire(payload)
	if err != nil {
		c.cfg.Logger.Warn("ignoring a stanza", "error", err)
		return
	}
	switch w.MessageType {
	case "ack":
		c.resolve(s, w.MessageID, nil)
	case "nack":
		c.resolve(s, w.MessageID, &NackError{MessageID: w.MessageID, Code: w.Error, Description: w.Description})
	case "", "deleted_messages":
		in <- delivery{s: s, m: w.message(payload)}
	default:
		c.cfg.Logger.Info("ignoring a message", "message_type", w.MessageType, "message_id", w.MessageID)
	}
}

// keepalive pings ccsd every Keepalive; if nothing at all arrives within
// PingTimeout of a ping, the peer is taken for dead and the connection
// closed, which ends the session (and Run makes a new one).
func (c *Client) keepalive(s *session) {
	t := time.NewTicker(c.cfg.Keepalive)
	defer t.Stop()
	for n := 1; ; n++ {
		select {
		case <-s.done:
			return
		case <-t.C:
		}
		sent := time.Now()
		if s.c.write(`<iq type="get" id="ping-`+strconv.Itoa(n)+`"><ping xmlns="urn:xmpp:ping"/></iq>`) != nil {
			return
		}
		timer := time.NewTimer(c.cfg.PingTimeout)
		select {
		case <-s.done:
			timer.Stop()
			return
		case <-timer.C:
		}
		if s.c.lastRead().Before(sent) {
			c.cfg.Logger.Warn("no answer to a ping; reconnecting", "timeout", c.cfg.PingTimeout)
			s.c.tls.Close()
			return
		}
	}
}
