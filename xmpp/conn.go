package xmpp

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"mellium.im/xmpp/stream"
)

var (
	// ErrClosed is returned by Send and Bounce once the connection is closing.
	ErrClosed = errors.New("xmpp: connection closed")
	// ErrQueueFull is returned by Send and Bounce when the connection's send
	// queue is full: the peer does not read fast enough, and the connection
	// is closed.
	ErrQueueFull = errors.New("xmpp: send queue full (slow consumer), connection closed")
)

// errUnsupportedStanza ends the stream when a top-level element is not a
// stanza.
var errUnsupportedStanza = errors.New("xmpp: unsupported top-level element")

// Sizes of the writer: up to batchBytes are coalesced into one TLS write; the
// priority queue carries IQ answers (pings) ahead of queued messages.
const (
	batchBytes = 64 << 10
	prioQueue  = 64
)

// Conn is one negotiated XMPP connection: authenticated, bound, with its own
// reader (the goroutine that called Handler.Open and then Stream.Message) and
// writer goroutines.
type Conn struct {
	srv      *Server
	id       uint64
	log      zerolog.Logger
	wire     *wireConn
	identity string
	jid      string
	remote   net.Addr
	idBase   []byte        // prefix of the ids of stanzas we send
	address  []byte        // ` from="..." to="JID"` of TypeNormal messages, or nil
	seq      atomic.Uint64 // suffix of the ids of stanzas we send

	mu      sync.RWMutex // Send/Bounce (read lock) against close (write lock)
	closed  bool
	cond    string // stream error condition of the close, "" for none
	text    string // optional text of the stream error
	abort   bool   // close the socket without a goodbye
	closing chan struct{}

	out        outQueue
	writerDone chan struct{}
	done       chan struct{}
}

func newConn(s *Server, id uint64, log zerolog.Logger, wire *wireConn, identity, jid string, remote net.Addr) *Conn {
	c := &Conn{
		srv:        s,
		id:         id,
		log:        log,
		wire:       wire,
		identity:   identity,
		jid:        jid,
		remote:     remote,
		closing:    make(chan struct{}),
		writerDone: make(chan struct{}),
		done:       make(chan struct{}),
	}
	c.idBase = append([]byte(s.idPrefix+"-"), strconv.FormatUint(id, 36)+"-"...)
	if s.cfg.DeliveryFrom != "" {
		c.address = appendEscapedAttr(append(c.address, ` from="`...), s.cfg.DeliveryFrom)
		c.address = appendEscapedAttr(append(c.address, `" to="`...), jid)
		c.address = append(c.address, '"')
	}
	return c
}

// ID returns the connection's number on its Server, the "conn" field of
// its log lines: unique per Server for the life of the process.
func (c *Conn) ID() uint64 { return c.id }

// Identity returns what the Authenticator returned for this connection.
func (c *Conn) Identity() string { return c.identity }

// JID returns the bound full JID, e.g. 123@gcm.googleapis.com/7F3A2C110B9D4E21.
func (c *Conn) JID() string { return c.jid }

// RemoteAddr returns the peer's network address.
func (c *Conn) RemoteAddr() net.Addr { return c.remote }

// Done is closed once the connection is fully closed: socket closed, reader
// and writer stopped.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Send queues <message id="..."[ type="typ"]><gcm xmlns="google:mobile:data">
// payload</gcm></message>. typ "" writes no type attribute (CCS ack, nack and
// control messages); "normal" is for upstream messages and receipts, and
// carries from and to when Config.DeliveryFrom is set. The
// payload is escaped (& < > only) and copied: the caller may reuse it. Send
// never blocks: it returns ErrClosed once the connection is closing, and if
// the bounded queue is full the peer is a slow consumer: it returns
// ErrQueueFull and closes the connection.
func (c *Conn) Send(payload []byte, typ string) error {
	b := make([]byte, 0, len(payload)+len(c.idBase)+len(c.address)+96+len(payload)/16)
	b = append(b, `<message id="`...)
	b = append(b, c.idBase...)
	b = strconv.AppendUint(b, c.seq.Add(1), 36)
	b = append(b, '"')
	if typ != "" {
		b = append(b, ` type="`...)
		b = appendEscapedAttr(b, typ)
		b = append(b, '"')
	}
	if typ == TypeNormal {
		b = append(b, c.address...)
	}
	b = append(b, '>')
	b = append(b, gcmOpen...)
	b = appendEscapedText(b, payload)
	b = append(b, gcmClose+`</message>`...)
	return c.enqueue(false, b)
}

// Bounce queues the CCS stanza error of spec §4.4 for a message the peer sent:
// <message id=stanzaID type="error" to=JID><gcm ...>payload</gcm>
// <error code="400" type="modify"><bad-request .../><text ...>text</text>
// </error></message>. It fails like Send.
func (c *Conn) Bounce(stanzaID string, payload []byte, text string) error {
	return c.enqueue(false, renderBounce(stanzaID, c.jid, payload, text))
}

// enqueue adds a rendered stanza to the send queue (prio: the IQ answers'
// queue) without blocking.
func (c *Conn) enqueue(prio bool, b []byte) error {
	c.mu.RLock()
	if c.closed {
		c.mu.RUnlock()
		return ErrClosed
	}
	limit := c.srv.cfg.SendQueue
	if prio {
		limit = prioQueue
	}
	ok := c.out.push(prio, b, limit, c.srv.cfg.SendQueueBytes)
	c.mu.RUnlock()
	if ok {
		c.kick()
		return nil
	}
	c.log.Warn().Int("queue", limit).Int("queue_bytes", c.srv.cfg.SendQueueBytes).
		Msg("xmpp: send queue full, closing slow consumer")
	c.shutdown("", true)
	return ErrQueueFull
}

// Usage is what one connection makes the server hold, as counts; the
// package documentation gives the bound they stay under.
type Usage struct {
	// QueuedStanzas and QueuedBytes are what waits for the writer (IQ
	// answers included); PeakQueuedBytes is the most QueuedBytes has been.
	// QueuedBytes never exceeds max(Config.SendQueueBytes, one stanza).
	QueuedStanzas, QueuedBytes, PeakQueuedBytes int
	// ReadBytes is what the stanza reader holds: the bytes read since it
	// last finished a top-level element (the element being read and what
	// was read past it); PeakReadBytes is the most it has been, never more
	// than Config.MaxStanzaSize + DecoderReadAhead.
	ReadBytes, PeakReadBytes int
	// Depth is how many elements below the stream are open where the reader
	// is; PeakDepth the most it has been, never more than MaxDepth.
	Depth, PeakDepth int
}

// DecoderReadAhead is the most the stanza reader reads at once (it was the
// size of encoding/xml's bufio.Reader, which it replaced): bytes it may hold
// past the element being read.
const DecoderReadAhead = 4096

// Usage reports what the connection holds now and the peaks so far.
func (c *Conn) Usage() Usage {
	n, b, peak := c.out.usage()
	r := c.wire.usage()
	return Usage{
		QueuedStanzas: n, QueuedBytes: b, PeakQueuedBytes: peak,
		ReadBytes: r.held, PeakReadBytes: r.peakHeld,
		Depth: r.depth, PeakDepth: r.peakDepth,
	}
}

// Close closes the connection and returns at once; Done tells when it is
// closed. With condition "" the send queue is flushed, </stream:stream> is
// written, the peer gets a short while to close its stream, and the socket is
// closed. Otherwise <stream:error><condition
// xmlns="urn:ietf:params:xml:ns:xmpp-streams"/></stream:error> goes out after
// the queued stanzas and before </stream:stream> (e.g. "conflict" when a
// device logs in again, "system-shutdown"). Only the first Close counts.
func (c *Conn) Close(condition string) { c.shutdown(condition, false) }

// shutdown starts closing: after it no Send succeeds. abort closes the socket
// at once without writing anything more.
func (c *Conn) shutdown(cond string, abort bool) { c.shutdownText(cond, "", abort) }

func (c *Conn) shutdownText(cond, text string, abort bool) {
	c.mu.Lock()
	if c.closed {
		first := abort && !c.abort
		c.abort = c.abort || abort
		c.mu.Unlock()
		if first {
			_ = c.wire.netConn().Close()
		}
		return
	}
	c.closed = true
	c.cond, c.text = cond, text
	c.abort = abort
	close(c.closing)
	c.mu.Unlock()
	c.kick() // a writer must run to say goodbye (or just to end, on abort)
	if abort {
		_ = c.wire.netConn().Close()
	}
}

func (c *Conn) aborted() bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.abort
}

// run is the connection's life after negotiation, on its own goroutine:
// admission, Handler.Open, the read loop, then teardown. mellium's session
// is not kept: its decoder, encoder and maps are garbage from here on.
func (c *Conn) run() {
	s := c.srv
	c.wire.established(s.cfg.IdleTimeout)
	_ = c.wire.Conn.SetWriteDeadline(time.Time{})

	var st Stream
	cond, text := s.register(c)
	if cond == "" {
		var err error
		st, err = c.open()
		if err != nil {
			var se *StreamError
			var sc interface{ StreamCondition() string }
			cond, text = "internal-server-error", ""
			switch {
			case errors.As(err, &se):
				cond, text = se.Condition, se.Text
			case errors.As(err, &sc):
				cond = sc.StreamCondition()
			}
			c.log.Info().Err(err).Msg("xmpp: handler refused the connection")
		}
	} else {
		c.log.Info().Str("reason", cond).Msg("xmpp: connection refused")
	}
	if cond != "" {
		c.shutdownText(cond, text, false)
		<-c.writerDone
		lingerClose(c.wire)
		s.unregister(c)
		close(c.done)
		return
	}

	c.log.Debug().Msg("xmpp: connection open")
	err := c.readLoop(st)
	reason, abort := c.classify(err)
	if reason != "" {
		c.log.Info().Err(err).Str("reason", reason).Msg("xmpp: closing connection")
	} else {
		c.log.Debug().Err(err).Msg("xmpp: connection closing")
	}
	c.shutdown(reason, abort)
	c.safeClosed(st)
	<-c.writerDone
	if c.aborted() {
		_ = c.wire.netConn().Close()
	} else {
		lingerClose(c.wire)
	}
	s.unregister(c)
	close(c.done)
}

func (c *Conn) open() (st Stream, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("xmpp: Handler.Open panicked: %v", p)
		}
	}()
	st, err = c.srv.cfg.Handler.Open(c)
	if err == nil && st == nil {
		err = errors.New("xmpp: Handler.Open returned a nil Stream")
	}
	return st, err
}

func (c *Conn) safeClosed(st Stream) {
	defer func() {
		if p := recover(); p != nil {
			c.log.Error().Interface("panic", p).Msg("xmpp: Stream.Closed panicked")
		}
	}()
	st.Closed()
}

// errHandlerPanic ends the read loop when Stream.Message panics.
var errHandlerPanic = errors.New("xmpp: Stream.Message panicked")

// deliver calls st.Message, turning a panic into errHandlerPanic.
func (c *Conn) deliver(st Stream, id string, payload []byte) (err error) {
	defer func() {
		if p := recover(); p != nil {
			c.log.Error().Interface("panic", p).Str("stanza_id", truncate(id, maxIDBytes)).Msg("xmpp: Stream.Message panicked")
			err = errHandlerPanic
		}
	}()
	st.Message(id, payload)
	return nil
}

// stanzaSink is what the read loop acts upon: the Conn (through connSink),
// or a recorder when the read path is fuzzed.
type stanzaSink interface {
	// closing reports whether the stream is being closed: from then on
	// nothing the peer sends is acted upon.
	closing() bool
	// message delivers a gcm message.
	message(id string, payload []byte) error
	// answer queues an IQ answer.
	answer(b []byte) error
	// elementDone is called once each top-level element has been read.
	elementDone()
}

// connSink is a Conn and its Stream as a stanzaSink.
type connSink struct {
	c  *Conn
	st Stream
}

func (s connSink) closing() bool {
	select {
	case <-s.c.closing:
		return true
	default:
		return false
	}
}

func (s connSink) message(id string, payload []byte) error { return s.c.deliver(s.st, id, payload) }
func (s connSink) answer(b []byte) error                   { return s.c.enqueue(true, b) }
func (s connSink) elementDone()                            { s.c.wire.elementDone() }

// readLoop reads stanzas until the stream ends or fails. A top-level
// element that is not a stanza ends the stream as soon as its start tag is
// read (errUnsupportedStanza), before any more of it is buffered. Once the
// connection is closing, stanzas are read (to see the peer's
// </stream:stream>) but dropped: neither delivered nor answered.
func (c *Conn) readLoop(st Stream) error {
	return newStanzaReader(c.wire).run(connSink{c: c, st: st}, c.srv.cfg.Domain)
}

// act delivers a message or answers an IQ.
func act(sink stanzaSink, s *inStanza, domain string) error {
	switch s.kind {
	case kindMessage:
		return sink.message(s.id, s.payload)
	case kindIQGet:
		switch {
		case s.child.Space == nsSession && s.child.Local == "session",
			s.child.Space == nsPing && s.child.Local == "ping":
			return sink.answer(renderIQ(s, domain, "", ""))
		default:
			return sink.answer(renderIQ(s, domain, "cancel", "service-unavailable"))
		}
	case kindIQInvalid:
		return sink.answer(renderIQ(s, domain, "modify", "bad-request"))
	}
	return nil // kindIgnored
}

// classify maps the error that stopped the reader to the stream error to
// send (or to an abort when the peer is gone).
func (c *Conn) classify(err error) (cond string, abort bool) {
	c.mu.RLock()
	closing := c.closed
	c.mu.RUnlock()
	if errors.Is(err, io.EOF) && !errors.Is(c.wire.readFailed(), io.EOF) {
		return "", false // the peer's </stream:stream>
	}
	if closing {
		return "", false // our close: the reader just ran out of time or input
	}
	return readCondition(err, c.wire.readFailed())
}

// readCondition maps the error that stopped the read loop (err) and the
// wire's read error (rerr, nil if reading did not fail) to the stream error
// condition, or to an abort when the peer is gone.
func readCondition(err, rerr error) (cond string, abort bool) {
	var before *errBeforeRead
	if errors.As(err, &before) {
		rerr = nil // the old decoder met it before the read failed
	}
	var ne net.Error
	var se stream.Error
	var syn *xml.SyntaxError
	switch {
	case errors.Is(err, io.EOF):
		return "", false
	case errors.Is(err, errUnsupportedStanza):
		// Decided on a whole start tag, whatever the read-ahead met since.
		return "unsupported-stanza-type", false
	case errors.Is(rerr, errStanzaTooBig): // size or depth
		return "policy-violation", false
	case errors.As(rerr, &ne) && ne.Timeout():
		return "connection-timeout", false
	case rerr != nil:
		return "", true
	case errors.Is(err, ErrClosed) || errors.Is(err, ErrQueueFull):
		return "", false
	case errors.Is(err, errHandlerPanic):
		return "internal-server-error", false
	case errors.As(err, &se):
		return "", false // the peer's stream error: just close
	case errors.As(err, &syn):
		return "not-well-formed", false
	default:
		return "policy-violation", false // e.g. an unexpected stream restart
	}
}

// writeLoop is the connection's only writer after negotiation. It coalesces
// queued stanzas into one TLS write per batch, IQ answers first.
func (c *Conn) writeLoop() {
	wt := c.srv.cfg.WriteTimeout
	for {
		b := c.out.pop()
		if b == nil {
			if c.out.idle(c.closing) {
				return // nothing queued, not closing: exit until kicked
			}
			if c.out.empty() {
				// Closing and drained: this writer is the last.
				c.finish()
				close(c.writerDone)
				return
			}
			continue
		}
		_ = c.wire.Conn.SetWriteDeadline(time.Now().Add(wt))
		if err := c.writeBatch(b, nil); err != nil {
			c.log.Debug().Err(err).Msg("xmpp: write failed")
			c.shutdown("", true)
			close(c.writerDone) // writing stays claimed: no writer runs again
			return
		}
	}
}

// kick starts the writer goroutine unless one is running. Writers run on
// demand, not parked per connection: device sessions are long-lived and
// mostly idle, and a parked goroutine holds a stack.
func (c *Conn) kick() {
	if c.out.claim() {
		go c.writeLoop()
	}
}

// writeBufs holds batch buffers. A connection takes one only while it
// writes, so an idle session holds no write buffer at all: with long-lived
// device sessions, that is most of them.
var writeBufs = sync.Pool{New: func() any { b := make([]byte, 0, batchBytes+4<<10); return &b }}

// writeBatch writes first, then whatever else is queued (up to batchBytes),
// then tail, in one Write.
func (c *Conn) writeBatch(first, tail []byte) error {
	buf := writeBufs.Get().(*[]byte)
	out := append((*buf)[:0], first...)
	for len(out) < batchBytes {
		b := c.out.pop()
		if b == nil {
			break
		}
		out = append(out, b...)
	}
	out = append(out, tail...)
	_, err := c.wire.Conn.Write(out)
	if cap(out) <= 4*batchBytes { // do not keep a buffer a huge stanza grew
		*buf = out[:0]
		writeBufs.Put(buf)
	}
	return err
}

// outQueue is a connection's bounded send queue, IQ answers (pings) ahead
// of messages. It holds only what is queued: a channel would allocate every
// slot for the connection's whole life, about 25 KiB per idle session.
type outQueue struct {
	mu      sync.Mutex
	prio    [][]byte
	items   [][]byte
	head    int  // items[:head] are already taken
	writing bool // a writer goroutine is running
	bytes   int  // bytes queued in prio and items together
	peak    int  // largest bytes ever
}

// claim reports whether the caller should start the writer: none runs.
func (q *outQueue) claim() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.writing {
		return false
	}
	q.writing = true
	return true
}

// idle releases the writer's claim if nothing is queued and the
// connection is not closing; it reports whether the writer may exit.
func (q *outQueue) idle(closing <-chan struct{}) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.prio) > 0 || q.head < len(q.items) {
		return false
	}
	select {
	case <-closing:
		return false
	default:
	}
	q.writing = false
	return true
}

func (q *outQueue) empty() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.prio) == 0 && q.head == len(q.items)
}

// push queues b unless its queue already holds limit stanzas, or the
// stanzas queued (both queues) and b together would pass byteLimit bytes. An
// empty queue takes any one stanza, so that a stanza bigger than byteLimit
// does not close the connection by itself: what is queued never exceeds
// max(byteLimit, one stanza).
func (q *outQueue) push(prio bool, b []byte, limit, byteLimit int) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.bytes > 0 && q.bytes+len(b) > byteLimit {
		return false
	}
	if prio {
		if len(q.prio) >= limit {
			return false
		}
		q.prio = append(q.prio, b)
	} else {
		if len(q.items)-q.head >= limit {
			return false
		}
		q.compact()
		q.items = append(q.items, b)
	}
	q.bytes += len(b)
	q.peak = max(q.peak, q.bytes)
	return true
}

// compact moves the stanzas still queued to the front of items once the
// taken ones are at least half of it. Without it a queue that never quite
// drains (a peer reading exactly as fast as it is sent to, say one that
// sends a bad stanza per bounce it reads) would grow its slice by a slot per
// stanza for ever.
func (q *outQueue) compact() {
	if q.head < 64 || q.head < len(q.items)/2 {
		return
	}
	n := copy(q.items, q.items[q.head:])
	clear(q.items[n:])
	q.items = q.items[:n]
	q.head = 0
}

// usage returns the stanzas and bytes queued and the peak bytes.
func (q *outQueue) usage() (stanzas, bytes, peak int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.prio) + len(q.items) - q.head, q.bytes, q.peak
}

// pop returns the next stanza to write, or nil if none is queued.
func (q *outQueue) pop() []byte {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.prio) > 0 {
		b := q.prio[0]
		q.prio[0] = nil
		q.prio = q.prio[1:]
		if len(q.prio) == 0 {
			q.prio = nil
		}
		q.bytes -= len(b)
		return b
	}
	if q.head == len(q.items) {
		return nil
	}
	b := q.items[q.head]
	q.items[q.head] = nil
	q.head++
	q.bytes -= len(b)
	if q.head == len(q.items) {
		// Drained: keep a small backing array for the next burst, drop a
		// large one so that an idle session holds little.
		q.head = 0
		if cap(q.items) > 64 {
			q.items = nil
		} else {
			q.items = q.items[:0]
		}
	}
	return b
}

// finish writes what is queued, the stream error if any and
// </stream:stream>, then gives the reader closeWait to see the peer's close.
func (c *Conn) finish() {
	c.mu.RLock()
	cond, text, abort := c.cond, c.text, c.abort
	c.mu.RUnlock()
	if abort {
		return
	}
	_ = c.wire.Conn.SetWriteDeadline(time.Now().Add(c.srv.cfg.WriteTimeout))
	var err error
	for b := c.out.pop(); b != nil && err == nil; b = c.out.pop() {
		err = c.writeBatch(b, nil)
	}
	if err == nil {
		end := []byte(`</stream:stream>`)
		if cond != "" {
			end = renderStreamError(cond, text) // ends the stream too
		}
		err = c.writeBatch(nil, end)
	}
	if err != nil {
		c.log.Debug().Err(err).Msg("xmpp: write failed while closing")
		c.shutdown("", true)
		return
	}
	c.wire.closeRead(time.Now().Add(closeWait))
}
