package xmpp

import (
	"bytes"
	"crypto/tls"
	"encoding/xml"
	"errors"
	"io"
	"sync"

	"mellium.im/xmpp/stream"
)

// readChunk is the most the stanza reader (and, during negotiation,
// ReadByte) asks the TLS connection for at once. With it the reader holds
// at most one top-level element (MaxStanzaSize) and readChunk bytes read
// past it: the same bound as encoding/xml's read-ahead (DecoderReadAhead)
// before this reader replaced it.
const readChunk = DecoderReadAhead

// idleRead is the size of the first read after the reader's buffer was
// given back: the read that waits while a session is idle uses a buffer on
// the goroutine's stack, so that an idle session holds no read buffer.
const idleRead = 512

// readBufs holds the reader buffers of readChunk bytes. A connection holds
// one only while it has bytes not yet consumed.
var readBufs = sync.Pool{New: func() any { b := make([]byte, readChunk); return &b }}

func getReadBuf() []byte { return (*readBufs.Get().(*[]byte))[:0] }

func putReadBuf(b []byte) {
	if cap(b) != readChunk {
		return // grown for a big stanza: let it go
	}
	b = b[:0]
	readBufs.Put(&b)
}

// errReaderStuck ends a stream whose bytes the scanner and the reference
// decoder cannot agree how to split; it is answered policy-violation.
var errReaderStuck = errors.New("xmpp: stanza reader cannot split the input")

// errNeedMore is returned by the parsers when the bytes end before the
// construct they parse does.
var errNeedMore = errors.New("xmpp: need more bytes")

// stanzaReader reads stanzas after negotiation straight from the bytes the
// wire's scanner kept. The scanner marks where each top-level construct
// ends and where each top-level start tag ends; the reader parses the
// complete ones with the CCS scanner (fastParser), which leaves anything
// unusual (comments, processing instructions, non-ASCII names, malformed
// input, stream-level elements) to encoding/xml on that construct alone
// (refParse), so that every answer is the one the generic decoder gives.
type stanzaReader struct {
	w    *wireConn
	ctx  *streamCtx
	buf  []byte // buf[r:] is not consumed yet; nil when nothing is held
	r    int
	base int64 // the scanner's output offset of buf[0]
	// checked is the start-tag mark already checked; stuck the done mark at
	// which the reference decoder asked for more bytes.
	checked, stuck int64
	rerr           error // the read error, once reading failed
	// probed is how many bytes of an incomplete construct were last
	// checked for errors; before is len(buf) before the last read.
	probed, before int
	beforeText     bool // the scanner was inside text at before
}

// errBeforeRead wraps an error the old decoder would have met before the
// read that failed: the stream's answer is that error, not the read's.
type errBeforeRead struct{ err error }

func (e *errBeforeRead) Error() string { return e.err.Error() }
func (e *errBeforeRead) Unwrap() error { return e.err }

// newStanzaReader takes over w after negotiation, with what negotiation's
// decoder read but did not consume.
func newStanzaReader(w *wireConn) *stanzaReader {
	sr := &stanzaReader{w: w, ctx: contextOf(w.sc.header), stuck: -1}
	w.sc.header = nil
	buf, pos := w.takeReadAhead()
	if pos < len(buf) {
		sr.buf, sr.r = buf, pos
	} else if buf != nil {
		putReadBuf(buf)
	}
	sr.base = w.sc.out - int64(len(sr.buf))
	sr.checked = w.sc.startAt
	if w.sc.doneAt < sr.base+int64(sr.r) {
		w.sc.doneAt = sr.base + int64(sr.r)
	}
	return sr
}

// run reads stanzas and acts on them through sink until the stream ends or
// fails, as readStanzas did over mellium's token reader.
func (sr *stanzaReader) run(sink stanzaSink, domain string) error {
	defer sr.release()
	for {
		if err := sr.process(sink, domain); err != nil {
			return err
		}
		if sr.rerr != nil {
			if err := sr.probeOnFailure(); err != nil {
				return err
			}
			if errors.Is(sr.rerr, io.EOF) {
				// The stream element is still open: for the decoder this
				// was an unexpected EOF (and the connection is aborted).
				return &xml.SyntaxError{Msg: "unexpected EOF"}
			}
			return sr.rerr
		}
		if err := sr.probeGrown(); err != nil {
			return err
		}
		if err := sr.fill(); err != nil {
			return err
		}
	}
}

// The decoder ccsd read with before found errors as soon as it read the
// bytes, not once the element was complete. So that the answer stays the
// same, the bytes of an element still incomplete are checked too: each
// time they have doubled since the last check (so that a big element costs
// at most twice its parse), and when a read fails.

// probeGrown checks the incomplete construct once it has doubled.
func (sr *stanzaReader) probeGrown() error {
	n := len(sr.buf) - sr.r
	if sr.buf == nil || n == 0 || n < 2*sr.probed {
		return nil
	}
	sr.probed = n
	return sr.probe(sr.buf[sr.r:], sr.w.sc.inText())
}

// probeOnFailure checks the incomplete construct when a read failed: an
// error in the bytes read before that read comes first (errBeforeRead),
// then one in all the bytes held.
func (sr *stanzaReader) probeOnFailure() error {
	if sr.buf == nil || sr.r == len(sr.buf) {
		return nil
	}
	if sr.before > sr.r {
		if err := sr.probe(sr.buf[sr.r:sr.before], sr.beforeText); err != nil {
			return &errBeforeRead{err}
		}
	}
	return sr.probe(sr.buf[sr.r:], sr.w.sc.inText())
}

// probe reports an error in b, the start of a construct not complete yet
// (nil if none so far).
func (sr *stanzaReader) probe(b []byte, textOpen bool) error {
	if b[0] == '<' && sr.ctx.fast {
		var p fastParser
		_, _, err := p.element(b, sr.ctx)
		switch {
		case err == nil || err == errFallback && p.short:
			return nil // nothing wrong in what is there
		case err != errFallback:
			return err
		}
	}
	err := refProbe(sr.ctx, b, textOpen)
	if errors.Is(err, errNeedMore) {
		return nil
	}
	return err
}

// process parses every complete construct held, then checks the start tag
// of an element still being read.
func (sr *stanzaReader) process(sink stanzaSink, domain string) error {
	sc := &sr.w.sc
	done := int(sc.doneAt - sr.base)
	for sr.r < done && sr.stuck != sc.doneAt {
		st, n, isStanza, err := sr.parseOne(sr.buf[sr.r:done])
		if errors.Is(err, errNeedMore) {
			sr.stuck = sc.doneAt // retry once more is complete
			break
		}
		if err != nil {
			return err
		}
		sr.r += n
		sr.probed = 0
		if !isStanza {
			continue
		}
		sink.elementDone()
		if sink.closing() {
			continue // e.g. a revoked sender: nothing more is accepted
		}
		if err := act(sink, &st, domain); err != nil {
			return err
		}
	}
	if sc.startAt > sr.base+int64(sr.r) && sc.startAt > sr.checked {
		if err := sr.checkStart(sr.buf[sr.r : sc.startAt-sr.base]); err != nil {
			if errors.Is(err, errNeedMore) {
				return nil // decided once the element is complete
			}
			return err
		}
		sr.checked = sc.startAt
	}
	return nil
}

// parseOne parses the construct at the start of b (complete constructs
// only): the CCS scanner first, the reference decoder if it declines.
func (sr *stanzaReader) parseOne(b []byte) (st inStanza, n int, isStanza bool, err error) {
	if sr.ctx.isStreamEnd(b) {
		return st, len(b), false, io.EOF // the peer's </stream:stream>
	}
	if b[0] == '<' && sr.ctx.fast {
		var p fastParser
		st, n, err = p.element(b, sr.ctx)
		if err != errFallback {
			return st, n, true, err
		}
	}
	return refParse(sr.ctx, b)
}

// checkStart refuses a top-level element that is not a stanza as soon as
// its start tag is read: b runs from the element (or the text before it)
// to the end of its start tag.
func (sr *stanzaReader) checkStart(b []byte) error {
	if b[0] == '<' && sr.ctx.fast {
		var p fastParser
		err := p.startOnly(b, sr.ctx)
		if err != errFallback {
			return err
		}
	}
	return refCheckStart(sr.ctx, b)
}

// fill reads once more into the buffer (kept bytes only: the scanner
// drops whitespace between stanzas). A read error is kept in rerr after
// the bytes read with it.
func (sr *stanzaReader) fill() error {
	if sr.buf != nil && sr.r == len(sr.buf) {
		sr.release()
	}
	if sr.buf == nil {
		var n int
		if tc, ok := sr.w.src.(*tls.Conn); ok && sr.w.rpos == len(sr.w.rbuf) {
			n = sr.readIdleTLS(tc)
		} else {
			n = sr.readIdle()
		}
		sr.base = sr.w.sc.out - int64(n)
		sr.before, sr.probed = 0, 0
		return nil
	}
	if sr.r > 0 && (len(sr.buf) == cap(sr.buf) || sr.r >= len(sr.buf)/2) {
		n := copy(sr.buf, sr.buf[sr.r:])
		sr.buf = sr.buf[:n]
		sr.base += int64(sr.r)
		sr.r = 0
	}
	if cap(sr.buf)-len(sr.buf) < readChunk/2 {
		if len(sr.buf)-sr.r > 2*sr.w.sc.limit+readChunk && sr.w.sc.limit > 0 {
			return errReaderStuck // only when the reference keeps asking for more
		}
		want := 2*cap(sr.buf) + readChunk
		if lim := sr.w.sc.limit; lim > 0 {
			// One element and the reads around it, unless the reference
			// decoder keeps asking for more (bounded above).
			want = min(want, max(lim+2*readChunk, len(sr.buf)+readChunk))
		}
		grown := make([]byte, len(sr.buf), want)
		copy(grown, sr.buf)
		putReadBuf(sr.buf)
		sr.buf = grown
	}
	end := len(sr.buf)
	sr.before, sr.beforeText = end, sr.w.sc.inText()
	n, err := sr.w.Read(sr.buf[end:min(cap(sr.buf), end+readChunk)])
	sr.buf = sr.buf[:end+n]
	sr.rerr = err
	return nil
}

// readIdleTLS is the read of an idle session: it waits with a buffer on
// the goroutine's stack (readTLS lets it stay there), and takes a pooled
// buffer only once bytes came.
func (sr *stanzaReader) readIdleTLS(tc *tls.Conn) int {
	var tmp [idleRead]byte
	n, err := sr.w.readTLS(tc, tmp[:])
	if n > 0 {
		sr.buf = append(getReadBuf(), tmp[:n]...)
	}
	sr.rerr = err
	return n
}

// readIdle is readIdleTLS from another source (tests, fuzzing).
func (sr *stanzaReader) readIdle() int {
	buf := getReadBuf()
	n, err := sr.w.Read(buf[:idleRead])
	if n > 0 {
		sr.buf = buf[:n]
	} else {
		putReadBuf(buf)
	}
	sr.rerr = err
	return n
}

// release gives the buffer back once nothing is held.
func (sr *stanzaReader) release() {
	if sr.buf == nil {
		return
	}
	sr.base += int64(len(sr.buf))
	putReadBuf(sr.buf)
	sr.buf, sr.r = nil, 0
}

// streamCtx is what the stanza reader needs of the client's stream header:
// the namespaces it declared, and the header itself for the reference
// decoder (rebuilt from the raw name and those declarations).
type streamCtx struct {
	ns     []nsDecl // in order; a later one for the same prefix wins
	header []byte   // the stream start tag, as the reference decoder's prefix
	fast   bool     // the CCS scanner may be used
	// end is the stream's end tag ("</stream:stream>") when its raw name
	// resolves to the stream namespace, else "".
	end string
}

// isStreamEnd reports whether b starts with the end tag of the stream, as
// written in its header's name (anything else, spaces before '>'
// included, goes the general way). What follows it is never read.
func (c *streamCtx) isStreamEnd(b []byte) bool {
	return c.end != "" && len(b) >= len(c.end) && string(b[:len(c.end)]) == c.end
}

// nsDecl is one namespace declaration: xmlns:prefix="uri" (prefix "" for
// the default namespace).
type nsDecl struct{ prefix, uri string }

// lookup returns the namespace bound to prefix by the header.
func (c *streamCtx) lookup(prefix []byte) (string, bool) {
	for i := len(c.ns) - 1; i >= 0; i-- {
		if c.ns[i].prefix == string(prefix) {
			return c.ns[i].uri, true
		}
	}
	return "", false
}

// defaultHeader is the header every CCS client sends, and the context when
// none was seen (tests that start after negotiation).
const defaultHeader = `<stream:stream xmlns="jabber:client" xmlns:stream="http://etherx.jabber.org/streams">`

// ctxCache shares the contexts of the headers seen (keyed by the header as
// sent and as rebuilt), so that the sessions of one kind of client share
// one and most logins parse no header. Bounded: past ctxCacheMax headers,
// new ones get a context of their own.
var ctxCache = struct {
	sync.Mutex
	m map[string]*streamCtx
}{m: map[string]*streamCtx{}}

const (
	ctxCacheMax    = 256
	ctxCacheKeyMax = 512 // bytes of a header worth caching
)

// contextOf returns the context of a captured stream header (nil: the
// default header).
func contextOf(header []byte) *streamCtx {
	if header != nil {
		ctxCache.Lock()
		c, ok := ctxCache.m[string(header)]
		ctxCache.Unlock()
		if ok {
			return c // the same header as an earlier client's
		}
	}
	c := buildContext(header)
	if header != nil && len(header) <= ctxCacheKeyMax {
		ctxCache.Lock()
		if len(ctxCache.m) < ctxCacheMax {
			ctxCache.m[string(header)] = c
		}
		ctxCache.Unlock()
	}
	return c
}

// buildContext is contextOf without the cache of raw headers.
func buildContext(header []byte) *streamCtx {
	h := []byte(defaultHeader)
	if header != nil {
		var ok bool
		if h, ok = rebuildHeader(header); !ok {
			// Not a tag encoding/xml reads: mellium would have refused it.
			// The reference decoder decides everything (and fails).
			return &streamCtx{header: append([]byte(nil), header...)}
		}
	}
	ctxCache.Lock()
	defer ctxCache.Unlock()
	if c, ok := ctxCache.m[string(h)]; ok {
		return c
	}
	c := newStreamCtx(h)
	if len(ctxCache.m) < ctxCacheMax && len(h) <= ctxCacheKeyMax {
		ctxCache.m[string(h)] = c
	}
	return c
}

// rebuildHeader renders the stream start tag with only its raw name and
// its namespace declarations: what the decoder's state depends on.
func rebuildHeader(header []byte) ([]byte, bool) {
	tok, err := xml.NewDecoder(bytes.NewReader(header)).RawToken()
	start, ok := tok.(xml.StartElement)
	if err != nil || !ok {
		return nil, false
	}
	b := append([]byte{'<'}, rawName(start.Name)...)
	for _, a := range start.Attr {
		if a.Name.Space == "xmlns" || a.Name.Space == "" && a.Name.Local == "xmlns" {
			b = append(b, ' ')
			b = append(b, rawName(a.Name)...)
			b = append(b, `="`...)
			b = appendEscapedAttr(b, a.Value)
			b = append(b, '"')
		}
	}
	return append(b, '>'), true
}

func rawName(n xml.Name) string {
	if n.Space == "" {
		return n.Local
	}
	return n.Space + ":" + n.Local
}

// newStreamCtx builds the context of a rebuilt header.
func newStreamCtx(h []byte) *streamCtx {
	c := &streamCtx{header: h}
	tok, err := xml.NewDecoder(bytes.NewReader(h)).RawToken()
	start, ok := tok.(xml.StartElement)
	if err != nil || !ok {
		return c
	}
	for _, a := range start.Attr {
		switch {
		case a.Name.Space == "xmlns":
			c.ns = append(c.ns, nsDecl{a.Name.Local, a.Value})
		case a.Name.Space == "" && a.Name.Local == "xmlns":
			c.ns = append(c.ns, nsDecl{"", a.Value})
		}
	}
	c.fast = true
	if uri, _ := c.lookup([]byte(start.Name.Space)); uri == stream.NS && start.Name.Local == "stream" &&
		start.Name.Space != "xml" && start.Name.Space != "xmlns" {
		c.end = "</" + rawName(start.Name) + ">"
	}
	return c
}
