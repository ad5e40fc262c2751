package xmpp

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// errStanzaTooBig is returned by wireConn.Read once a single top-level element
// (a stanza, or a negotiation element such as <auth/>) has grown past the
// configured limit. Nothing past the limit is handed to the XML decoder.
var errStanzaTooBig = errors.New("xmpp: stanza exceeds the size limit")

// MaxDepth bounds how deep elements may nest below the stream element: a
// stanza is level 1, its <gcm/> child level 2, a bind IQ's <resource/> level
// 3. Past it the read fails with errTooDeep. No stanza ccsd understands comes
// near it; the bound keeps the XML decoder's element stack (one entry per
// open element) small whatever a client sends.
const MaxDepth = 16

// errTooDeep is returned by wireConn.Read once elements nest deeper than
// MaxDepth. It wraps errStanzaTooBig: every check of the read limits (the
// stream error policy-violation, during and after negotiation) covers it.
var errTooDeep = fmt.Errorf("%w: elements nested deeper than %d levels", errStanzaTooBig, MaxDepth)

// maxStreamHeaders is how many stream headers a client may send: the first
// and the one after SASL success (TLS is direct, so there is no STARTTLS
// restart). A later one is not a restart but an ordinary element, which the
// session refuses.
const maxStreamHeaders = 2

// lexState is where the byte scanner of wireConn is inside the XML stream.
type lexState uint8

const (
	lexText      lexState = iota // character data between tags
	lexLT                        // just read '<'
	lexStartTag                  // inside a start tag (name or attributes)
	lexAttrValue                 // inside a quoted attribute value
	lexEndTag                    // inside an end tag
	lexPI                        // inside <? ... ?>
	lexBang                      // read "<!", deciding between comment, CDATA and declaration
	lexComment                   // inside <!-- ... -->
	lexCDATA                     // inside <![CDATA[ ... ]]>
	lexDecl                      // inside <!DOCTYPE ...> or another declaration
)

// scanner follows an XMPP byte stream just far enough to know the element
// depth, without decoding anything. It is the basis of three jobs the XML
// decoder cannot do for us:
//
//   - it drops whitespace between top-level elements (depth <= 1), which
//     mellium's feature negotiation rejects (go-xmpp writes "\n" after the
//     stream header and after <auth/>);
//   - it counts the bytes of the current top-level element and fails the read
//     once they exceed the limit, so the decoder never buffers an oversized
//     stanza;
//   - it never alters a byte inside a stanza (depth >= 2), in a tag, in a
//     quoted attribute value, in CDATA, a comment or a processing instruction.
//
// A start tag whose local name is "stream" at depth <= 1 opens (or restarts)
// the stream and leaves the depth at 1, but only for the first
// maxStreamHeaders of them and never once negotiation has ended
// (established): otherwise a client could nest <a:stream> tags without end,
// each resetting the count while the decoder stacks them all. Elements
// nesting past MaxDepth fail the read with errTooDeep.
type scanner struct {
	state lexState
	depth int
	quote byte // quote character of the current attribute value
	// tail holds the last bytes seen in states that end with a multi-byte
	// marker ("?>", "-->", "]]>") or that must recognise a prefix ("<!--",
	// "<![CDATA[").
	tail    [9]byte
	ntail   int
	slash   bool // the last significant byte of the current tag was '/'
	inName  bool // still reading the tag name
	name    [64]byte
	nname   int
	nameLen int // full name length (may exceed len(name))
	count   int // bytes of the current top-level element
	limit   int // 0 = unlimited
	headers int // stream headers seen (opens and restarts)
	// established: negotiation has ended, a stream tag is never a restart.
	established bool
	tooDeep     bool // a start tag went past MaxDepth
	peakDepth   int  // largest depth so far

	// Marks for the stanza reader, as offsets in the output (the bytes
	// kept, counted since the start of the connection): out is the end of
	// the output so far, doneAt the end of the last complete top-level
	// construct (element, or markup between elements), startAt the end of
	// the start tag of the last top-level element opened.
	out, doneAt, startAt int64
	ended, opened        bool // set by step, turned into marks by filter
	text                 bool // text was kept between top-level elements
	chars                bool // the last byte kept was character data

	// During negotiation the start tags at stream level are captured, so
	// that the stanza reader knows the namespaces the last stream header
	// declared (hdr while a tag is read, header the last stream header).
	capture     bool
	hdr, header []byte
}

// inText reports whether the bytes so far end inside text: character
// data, an attribute value or CDATA.
func (s *scanner) inText() bool {
	return s.state == lexText && s.chars || s.state == lexAttrValue || s.state == lexCDATA
}

func isSpace(b byte) bool { return b == ' ' || b == '\n' || b == '\r' || b == '\t' }

// filter scans p, drops whitespace between top-level elements and returns the
// kept bytes (compacted in place) or errStanzaTooBig / errTooDeep. A byte that
// would take the count past the limit is not kept: the decoder never sees
// more than limit bytes of one top-level element.
func (s *scanner) filter(p []byte) ([]byte, error) {
	w := 0 // write index; bytes p[:w] are kept
	i := 0
	for i < len(p) {
		if s.limit > 0 && s.count >= s.limit && !(s.state == lexText && s.depth < 2 && isSpace(p[i])) {
			s.out += int64(w)
			return p[:w], errStanzaTooBig
		}
		switch s.state {
		case lexText:
			if s.depth >= 2 {
				// Inside a stanza: copy text verbatim up to the next tag.
				j := bytes.IndexByte(p[i:], '<')
				if j < 0 {
					j = len(p) - i
				}
				if s.limit > 0 {
					j = min(j, s.limit-s.count)
				}
				w += copy(p[w:], p[i:i+j])
				s.count += j
				i += j
				if j > 0 {
					s.chars = true
				}
				if i < len(p) && p[i] == '<' && (s.limit == 0 || s.count < s.limit) {
					s.chars = false
					s.count++
					p[w] = '<'
					w++
					i++
					s.state = lexLT
				}
				break
			}
			b := p[i]
			i++
			if isSpace(b) {
				continue // dropped: whitespace keepalive or formatting
			}
			s.count++
			p[w] = b
			w++
			if b != '<' {
				s.text, s.chars = true, true
				break
			}
			s.chars = false
			s.state = lexLT
			if s.text {
				// Text between elements ends here: the decoder reads it
				// as a token of its own (refused by the stream reader
				// unless it is whitespace written as references).
				s.text = false
				s.doneAt = s.out + int64(w)
			}
		default:
			b := p[i]
			i++
			s.count++
			p[w] = b
			w++
			if s.capture {
				s.captureByte(b)
			}
			s.step(b)
			if s.tooDeep {
				s.out += int64(w - 1)
				return p[:w-1], errTooDeep // without the '>' of the start tag
			}
			if s.ended {
				s.ended = false
				s.doneAt = s.out + int64(w)
			}
			if s.opened {
				s.opened = false
				s.startAt = s.out + int64(w)
			}
		}
	}
	s.out += int64(w)
	return p[:w], nil
}

// captureByte adds b to the stream-level start tag being captured; a tag
// longer than the stanza limit is not kept (the read fails anyway).
func (s *scanner) captureByte(b byte) {
	if s.limit > 0 && len(s.hdr) >= s.limit {
		s.capture = false
		s.hdr = nil
		return
	}
	s.hdr = append(s.hdr, b)
}

// endTop notes that a top-level element (or markup between them) ended: its
// count starts again from zero, and the stanza reader may parse it.
func (s *scanner) endTop() {
	s.count = 0
	s.ended = true
}

// step advances the scanner by one byte in every state but lexText. It is
// one switch over the lexer states, kept whole on purpose: each case is a
// few lines, the state machine is checked by reading them side by side,
// and it runs for every byte read.
func (s *scanner) step(b byte) {
	switch s.state {
	case lexLT:
		switch b {
		case '/':
			s.state = lexEndTag
		case '?':
			s.state = lexPI
			s.ntail = 0
		case '!':
			s.state = lexBang
			s.ntail = 0
		default:
			s.state = lexStartTag
			s.slash = false
			s.inName = true
			s.nname, s.nameLen = 0, 0
			s.addName(b)
			if !s.established && s.depth <= 1 {
				s.capture = true
				s.hdr = append(s.hdr[:0], '<', b)
			}
		}
	case lexStartTag:
		switch {
		case b == '"' || b == '\'':
			s.inName = false
			s.slash = false
			s.quote = b
			s.state = lexAttrValue
		case b == '>':
			s.endStartTag()
		case b == '/':
			s.inName = false
			s.slash = true
		case isSpace(b):
			s.inName = false
		default:
			if s.inName {
				s.addName(b)
			}
			s.slash = false
		}
	case lexAttrValue:
		if b == s.quote {
			s.state = lexStartTag
		}
	case lexEndTag:
		if b == '>' {
			s.depth--
			if s.depth < 0 {
				s.depth = 0
			}
			s.state = lexText
			if s.depth <= 1 {
				s.endTop()
			}
		}
	case lexPI:
		if b == '>' && s.ntail > 0 && s.tail[0] == '?' {
			s.endMarkup()
			break
		}
		s.tail[0] = b
		s.ntail = 1
	case lexBang:
		s.tail[s.ntail] = b
		s.ntail++
		pre := s.tail[:s.ntail]
		switch {
		case string(pre) == "--":
			s.state = lexComment
			s.ntail = 0
		case string(pre) == "[CDATA[":
			s.state = lexCDATA
			s.ntail = 0
		case !isPrefix(pre, "--") && !isPrefix(pre, "[CDATA["):
			s.state = lexDecl
			if b == '>' {
				s.endMarkup()
			}
		}
	case lexComment:
		if b == '>' && s.ntail >= 2 && s.tail[0] == '-' && s.tail[1] == '-' {
			s.endMarkup()
			break
		}
		s.push2(b)
	case lexCDATA:
		if b == '>' && s.ntail >= 2 && s.tail[0] == ']' && s.tail[1] == ']' {
			s.endMarkup() // at stream level, a construct of its own
			break
		}
		s.push2(b)
	case lexDecl:
		if b == '>' {
			s.endMarkup()
		}
	}
}

// push2 keeps the last two bytes in tail[0:2], oldest first.
func (s *scanner) push2(b byte) {
	if s.ntail < 2 {
		s.tail[s.ntail] = b
		s.ntail++
		return
	}
	s.tail[0], s.tail[1] = s.tail[1], b
}

func (s *scanner) endMarkup() {
	s.state = lexText
	if s.depth <= 1 {
		s.endTop()
	}
}

func isPrefix(b []byte, of string) bool {
	return len(b) <= len(of) && string(b) == of[:len(b)]
}

func (s *scanner) addName(b byte) {
	if s.nname < len(s.name) {
		s.name[s.nname] = b
		s.nname++
	}
	s.nameLen++
}

// localIsStream reports whether the current tag name is "stream" or "*:stream".
func (s *scanner) localIsStream() bool {
	if s.nameLen > len(s.name) {
		return false
	}
	n := s.name[:s.nname]
	if i := bytes.LastIndexByte(n, ':'); i >= 0 {
		n = n[i+1:]
	}
	return string(n) == "stream"
}

func (s *scanner) endStartTag() {
	s.state = lexText
	captured := s.capture
	s.capture = false
	if s.depth <= 1 && !s.established && s.headers < maxStreamHeaders && !s.slash && s.localIsStream() {
		s.headers++
		s.depth = 1 // stream open or restart
		s.endTop()
		if captured {
			s.header = append(s.header[:0], s.hdr...)
		}
		return
	}
	// The stream element is depth 1, a stanza depth 2.
	level := s.depth + 1
	if level > MaxDepth+1 {
		s.tooDeep = true // filter fails before the decoder sees the '>'
		return
	}
	s.peakDepth = max(s.peakDepth, level)
	if !s.slash { // a self-closing element leaves the depth unchanged
		s.depth = level
		if level == 2 {
			s.opened = true
		}
	}
	if s.depth <= 1 {
		s.endTop()
	}
}

// wireConn sits between the TLS connection and mellium's XML decoder. Besides
// the scanner's jobs it keeps the read deadline: during negotiation a fixed
// deadline set by the caller, afterwards IdleTimeout from the last read,
// and once the connection is closing a fixed close deadline.
type wireConn struct {
	*tls.Conn
	src io.Reader // where bytes come from: the TLS connection (tests: memory)

	// rbuf[rpos:] are bytes read and filtered but not yet taken by ReadByte
	// (mellium's decoder, during negotiation); the stanza reader takes
	// over what is left. ReadByte is why encoding/xml reads through no
	// bufio.Reader of its own, whose read-ahead would be out of reach.
	rbuf []byte
	rpos int

	rmu     sync.Mutex // guards sc, readErr and the read deadline bookkeeping
	sc      scanner
	readErr error
	idle    time.Duration // 0 = the deadline is managed by the caller
	closing bool
	lastSet time.Time // when the idle deadline was last pushed

	// passed counts the bytes handed to the XML decoder, mark is passed when
	// the reader last finished a top-level element: passed-mark is what the
	// decoder holds (the element being read and its read-ahead).
	passed, mark, peakHeld int64

	written atomic.Int64 // bytes written, to know whether mellium answered
	mute    atomic.Bool  // discard writes (after a stream error during negotiation)

	// During negotiation writes are collected in wbuf and sent together
	// before the next read (the server only waits for the client once it
	// has answered): mellium writes a stream header and then the features,
	// which would otherwise be two TLS records and two system calls.
	buffering bool
	wbuf      []byte
}

func newWireConn(c *tls.Conn, limit int) *wireConn {
	w := &wireConn{Conn: c, src: c, buffering: true}
	w.sc.limit = limit
	return w
}

// Read implements net.Conn. It refreshes the idle deadline, reads, and runs
// the bytes through the scanner. Bytes already read for ReadByte come first.
func (w *wireConn) Read(p []byte) (int, error) {
	if w.rpos < len(w.rbuf) {
		n := copy(p, w.rbuf[w.rpos:])
		w.rpos += n
		return n, nil
	}
	return w.readFrom(w.src, p)
}

// ReadByte implements io.ByteReader for the XML decoder of negotiation,
// reading ahead at most readChunk bytes into rbuf.
func (w *wireConn) ReadByte() (byte, error) {
	if w.rpos == len(w.rbuf) {
		if w.rbuf == nil {
			w.rbuf = getReadBuf()
		}
		n, err := w.readFrom(w.src, w.rbuf[:readChunk])
		w.rbuf, w.rpos = w.rbuf[:n], 0
		if n == 0 {
			return 0, err
		}
		// An error after n > 0 bytes is kept in readErr for the next read.
	}
	b := w.rbuf[w.rpos]
	w.rpos++
	return b, nil
}

// takeReadAhead hands over the bytes read but not taken by ReadByte (the
// buffer and the offset of the first unread byte), and forgets them.
func (w *wireConn) takeReadAhead() (buf []byte, pos int) {
	buf, pos = w.rbuf, w.rpos
	w.rbuf, w.rpos = nil, 0
	return buf, pos
}

// readFrom is Read with the source of the bytes as a parameter (the TLS
// connection, or an in-memory reader in tests and fuzzing).
func (w *wireConn) readFrom(src io.Reader, p []byte) (int, error) {
	if tc, ok := src.(*tls.Conn); ok {
		return w.readTLS(tc, p)
	}
	for {
		if err := w.beforeRead(); err != nil {
			return 0, err
		}
		n, err := src.Read(p)
		if n, again, err := w.keep(p, n, err); !again {
			return n, err
		}
	}
}

// readTLS is readFrom from the TLS connection, calling it directly so that
// p does not escape: the reader's idle read uses a buffer on its stack.
func (w *wireConn) readTLS(tc *tls.Conn, p []byte) (int, error) {
	if len(w.wbuf) > 0 {
		if err := w.flush(); err != nil {
			return 0, err
		}
	}
	for {
		if err := w.beforeRead(); err != nil {
			return 0, err
		}
		n, err := tc.Read(p)
		if n, again, err := w.keep(p, n, err); !again {
			return n, err
		}
	}
}

// keep runs the n bytes read into p through the scanner. again: everything
// read was whitespace, read again rather than return 0, nil.
func (w *wireConn) keep(p []byte, n int, err error) (int, bool, error) {
	w.rmu.Lock()
	defer w.rmu.Unlock()
	var kept []byte
	var ferr error
	if n > 0 {
		kept, ferr = w.sc.filter(p[:n])
	}
	if ferr != nil {
		w.readErr = ferr
		err = ferr
	} else if err != nil {
		w.readErr = err
	}
	w.passed += int64(len(kept))
	w.peakHeld = max(w.peakHeld, w.passed-w.mark)
	return len(kept), len(kept) == 0 && err == nil, err
}

// beforeRead returns the error a previous read failed with, else pushes the
// idle deadline (once established and not closing).
func (w *wireConn) beforeRead() error {
	w.rmu.Lock()
	defer w.rmu.Unlock()
	if w.readErr != nil {
		return w.readErr
	}
	if w.idle > 0 && !w.closing {
		now := time.Now()
		// Pushing the deadline costs a timer update; do it at most once
		// per eighth of the timeout, capped at 1s (so it fires at most
		// that much early).
		if now.Sub(w.lastSet) >= min(w.idle/8, time.Second) {
			_ = w.Conn.SetReadDeadline(now.Add(w.idle))
			w.lastSet = now
		}
	}
	return nil
}

// Write implements net.Conn and counts the bytes written. During
// negotiation the bytes wait in wbuf for the next read (or flush).
func (w *wireConn) Write(p []byte) (int, error) {
	if w.mute.Load() {
		return len(p), nil
	}
	if w.buffering {
		w.wbuf = append(w.wbuf, p...)
		w.written.Add(int64(len(p)))
		return len(p), nil
	}
	n, err := w.Conn.Write(p)
	w.written.Add(int64(n))
	return n, err
}

// flush sends what negotiation wrote; a failure is also the read error
// (the peer is gone).
func (w *wireConn) flush() error {
	if len(w.wbuf) == 0 {
		return nil
	}
	_, err := w.Conn.Write(w.wbuf)
	w.wbuf = w.wbuf[:0]
	if err != nil {
		w.rmu.Lock()
		if w.readErr == nil {
			w.readErr = err
		}
		w.rmu.Unlock()
	}
	return err
}

// endBuffering sends what is buffered and writes straight through from now
// on.
func (w *wireConn) endBuffering() {
	if w.Conn != nil {
		_ = w.flush()
	}
	w.buffering = false
	w.wbuf = nil
}

// established tells the scanner that negotiation has ended (no stream tag
// is a restart from now on) and switches the read deadline to the idle
// timeout (idle 0: the caller keeps managing it).
func (w *wireConn) established(idle time.Duration) {
	w.endBuffering()
	w.rmu.Lock()
	defer w.rmu.Unlock()
	w.sc.established = true
	w.sc.capture = false
	w.sc.hdr = nil
	w.mark = w.passed // negotiation's bytes are all consumed
	w.peakHeld = 0    // Usage reports the session's peak, not negotiation's
	if w.closing || idle <= 0 {
		return
	}
	w.idle = idle
	w.lastSet = time.Now()
	_ = w.Conn.SetReadDeadline(w.lastSet.Add(idle))
}

// closeRead fixes the read deadline at t and stops refreshing it: the reader
// gets at most until t to see the peer's </stream:stream>.
func (w *wireConn) closeRead(t time.Time) {
	w.rmu.Lock()
	defer w.rmu.Unlock()
	w.closing = true
	_ = w.Conn.SetReadDeadline(t)
}

// elementDone notes that the reader consumed a whole top-level element:
// what the decoder still holds is only read-ahead.
func (w *wireConn) elementDone() {
	w.rmu.Lock()
	w.mark = w.passed
	w.rmu.Unlock()
}

// readUsage is what the reader side of a connection holds, as counts.
type readUsage struct {
	held, peakHeld   int // bytes handed to the decoder, not yet consumed as a whole element
	depth, peakDepth int // element levels below the stream
}

// usage reports the reader's counts.
func (w *wireConn) usage() readUsage {
	w.rmu.Lock()
	defer w.rmu.Unlock()
	return readUsage{
		held:      int(w.passed - w.mark),
		peakHeld:  int(w.peakHeld),
		depth:     max(w.sc.depth-1, 0),
		peakDepth: max(w.sc.peakDepth-1, 0),
	}
}

// readFailed reports whether a read has already failed (peer gone, timeout,
// size limit).
func (w *wireConn) readFailed() error {
	w.rmu.Lock()
	defer w.rmu.Unlock()
	return w.readErr
}

// SetDeadline is a no-op: deadlines belong to this package, not to mellium
// (whose context watcher sets a deadline in the past and then clears it, which
// can lose the wake-up and leave a read with no deadline at all).
func (w *wireConn) SetDeadline(time.Time) error { return nil }

// SetReadDeadline is a no-op; see SetDeadline.
func (w *wireConn) SetReadDeadline(time.Time) error { return nil }

// SetWriteDeadline is a no-op; see SetDeadline.
func (w *wireConn) SetWriteDeadline(time.Time) error { return nil }

// NetConn returns the TCP connection under the TLS layer.
func (w *wireConn) netConn() net.Conn { return w.Conn.NetConn() }
