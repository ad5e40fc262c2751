package xmpp

import (
	"bytes"
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// errStanzaTooBig is returned by wireConn.Read once a single top-level element
// (a stanza, or a negotiation element such as <auth/>) has grown past the
// configured limit. Nothing past the limit is handed to the XML decoder.
var errStanzaTooBig = errors.New("xmpp: stanza exceeds the size limit")

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
// the stream and leaves the depth at 1.
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
}

func isSpace(b byte) bool { return b == ' ' || b == '\n' || b == '\r' || b == '\t' }

// filter scans p, drops whitespace between top-level elements and returns the
// kept bytes (compacted in place) or errStanzaTooBig.
func (s *scanner) filter(p []byte) ([]byte, error) {
	w := 0 // write index; bytes p[:w] are kept
	i := 0
	for i < len(p) {
		switch s.state {
		case lexText:
			if s.depth >= 2 {
				// Inside a stanza: copy text verbatim up to the next tag.
				j := bytes.IndexByte(p[i:], '<')
				if j < 0 {
					j = len(p) - i
				}
				w += copy(p[w:], p[i:i+j])
				s.count += j
				i += j
				if i < len(p) {
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
			if b == '<' {
				s.state = lexLT
			}
		default:
			b := p[i]
			i++
			s.count++
			p[w] = b
			w++
			s.step(b)
		}
		if s.limit > 0 && s.count > s.limit {
			return p[:w], errStanzaTooBig
		}
	}
	return p[:w], nil
}

// step advances the scanner by one byte in every state but lexText.
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
				s.count = 0
			}
		}
	case lexPI:
		if b == '>' && s.ntail > 0 && s.tail[0] == '?' {
			s.state = lexText
			if s.depth <= 1 {
				s.count = 0
			}
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
			s.state = lexText
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
		s.count = 0
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
	switch {
	case s.slash:
		// Self-closing: depth unchanged.
	case s.depth <= 1 && s.localIsStream():
		s.depth = 1 // stream open or restart
	default:
		s.depth++
	}
	if s.depth <= 1 {
		s.count = 0
	}
}

// wireConn sits between the TLS connection and mellium's XML decoder. Besides
// the scanner's jobs it keeps the read deadline: during negotiation a fixed
// deadline set by the caller, afterwards IdleTimeout from the last read,
// and once the connection is closing a fixed close deadline.
type wireConn struct {
	*tls.Conn

	rmu     sync.Mutex // guards sc, readErr and the read deadline bookkeeping
	sc      scanner
	readErr error
	idle    time.Duration // 0 = the deadline is managed by the caller
	closing bool
	lastSet time.Time // when the idle deadline was last pushed

	written atomic.Int64 // bytes written, to know whether mellium answered
	mute    atomic.Bool  // discard writes (after a stream error during negotiation)
}

func newWireConn(c *tls.Conn, limit int) *wireConn {
	w := &wireConn{Conn: c}
	w.sc.limit = limit
	return w
}

// Read implements net.Conn. It refreshes the idle deadline, reads, and runs
// the bytes through the scanner.
func (w *wireConn) Read(p []byte) (int, error) {
	for {
		w.rmu.Lock()
		if w.readErr != nil {
			err := w.readErr
			w.rmu.Unlock()
			return 0, err
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
		w.rmu.Unlock()

		n, err := w.Conn.Read(p)
		w.rmu.Lock()
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
		w.rmu.Unlock()
		if len(kept) > 0 || err != nil {
			return len(kept), err
		}
		// Everything read was whitespace; read again rather than return 0, nil.
	}
}

// Write implements net.Conn and counts the bytes written.
func (w *wireConn) Write(p []byte) (int, error) {
	if w.mute.Load() {
		return len(p), nil
	}
	n, err := w.Conn.Write(p)
	w.written.Add(int64(n))
	return n, err
}

// established switches the read deadline to the idle timeout.
func (w *wireConn) established(idle time.Duration) {
	w.rmu.Lock()
	defer w.rmu.Unlock()
	if w.closing {
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
