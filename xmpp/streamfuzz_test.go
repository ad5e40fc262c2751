package xmpp

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"testing/iotest"

	"mellium.im/xmpp"
	"mellium.im/xmpp/stream"
)

// fuzzSink records what the read loop acts upon. After closeAfter messages
// it starts closing, as Conn.Close would; acting on anything afterwards is a
// bug.
type fuzzSink struct {
	t          *testing.T
	closeAfter int // -1: never
	isClosing  bool
	msgs       []parsed
	answers    [][]byte
}

func (s *fuzzSink) closing() bool { return s.isClosing }

func (s *fuzzSink) message(id string, payload []byte) error {
	if s.isClosing {
		s.t.Fatalf("message %q delivered while closing", id)
	}
	s.msgs = append(s.msgs, parsed{Kind: kindMessage, ID: id, Payload: string(payload)})
	if len(s.msgs) == s.closeAfter {
		s.isClosing = true
	}
	return nil
}

func (s *fuzzSink) answer(b []byte) error {
	if s.isClosing {
		s.t.Fatalf("IQ answered while closing: %s", b)
	}
	s.answers = append(s.answers, b)
	return nil
}

func (s *fuzzSink) elementDone() {}

// fuzzRW is the session's connection: reads go through the real wireConn
// scanner, writes are dropped.
type fuzzRW struct {
	w   *wireConn
	src io.Reader
}

func (f fuzzRW) Read(p []byte) (int, error) { return f.w.readFrom(f.src, p) }

// fuzzRW is deliberately not a net.Conn and has no ReadByte: mellium wraps
// it and its decoder reads through a bufio.Reader, as it did from the
// wireConn before the stanza reader.
func (f fuzzRW) Write(p []byte) (int, error) { return len(p), nil }

// headerOnly is a mellium Negotiator that reads the client's stream header
// and declares the session ready: the decoder is then where it is after a
// real negotiation, inside the stream, and mellium wraps it in the same
// stream-level reader a negotiated session reads stanzas from.
func headerOnly(_ context.Context, _, _ *stream.Info, s *xmpp.Session, _ interface{}) (xmpp.SessionState, io.ReadWriter, interface{}, error) {
	r := s.TokenReader()
	defer r.Close()
	for {
		tok, err := r.Token()
		if err != nil {
			return 0, nil, nil, err
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "stream" {
			return xmpp.Ready, nil, nil, nil
		}
	}
}

// depthReader counts how deep the decoder's tokens nest, independently of
// the scanner's own count.
type depthReader struct {
	r          xml.TokenReader
	depth, max int
}

func (d *depthReader) Token() (xml.Token, error) {
	tok, err := d.r.Token()
	switch tok.(type) {
	case xml.StartElement:
		d.depth++
		d.max = max(d.max, d.depth)
	case xml.EndElement:
		d.depth--
	}
	return tok, err
}

// streamRun is the outcome of reading one post-negotiation stream.
type streamRun struct {
	sink  *fuzzSink
	err   error  // what stopped the read loop
	cond  string // the stream error the connection would send
	abort bool   // the socket would be closed without a goodbye
	rerr  error  // the wire's read error, if reading failed
	usage readUsage
	depth int // the deepest the decoder's tokens nested below the stream (old path)
}

// readStanzas is the read loop ccsd had before the CCS scanner: tokens
// from mellium's session reader, startStanza and readStanzaBody. It is
// kept as the reference of the differential fuzz target.
func readStanzas(r xml.TokenReader, sink stanzaSink, domain string) error {
	for {
		tok, err := r.Token()
		if err != nil {
			return err
		}
		start, ok := tok.(xml.StartElement)
		if !ok {
			continue // whitespace between stanzas
		}
		s := startStanza(start)
		if s.kind == kindOther {
			return errUnsupportedStanza
		}
		s, err = readStanzaBody(r, s)
		if err != nil {
			return err
		}
		sink.elementDone()
		if sink.closing() {
			continue
		}
		if err := act(sink, &s, domain); err != nil {
			return err
		}
	}
}

// sessionSource returns the reader the session reads in from: the header
// and the rest as two reads, or (oneChunk) all at once, so that the
// stanzas are read ahead during negotiation, as when a client pipelines.
func sessionSource(in []byte, hdrLen int, oneChunk bool) io.Reader {
	if oneChunk {
		return bytes.NewReader(in)
	}
	return io.MultiReader(bytes.NewReader(in[:hdrLen]), bytes.NewReader(in[hdrLen:]))
}

// readSession runs in through the whole post-negotiation read path as
// ccsd runs it: the wireConn scanner under mellium's decoder for the
// header (through ReadByte), then, once established, the stanza reader
// (the CCS scanner, and the reference decoder for what it declines).
func readSession(t *testing.T, in []byte, hdrLen, limit int, oneChunk bool, closeAfter int) streamRun {
	return readSessionFrom(t, sessionSource(in, hdrLen, oneChunk), limit, oneChunk, closeAfter)
}

// readSessionFrom is readSession from src (lenient: a header that fails).
func readSessionFrom(t *testing.T, src io.Reader, limit int, lenient bool, closeAfter int) streamRun {
	oneChunk := lenient
	w := &wireConn{src: src}
	w.sc.limit = limit
	w.sc.headers = maxStreamHeaders - 1 // the header read is the one after SASL
	w.mute.Store(true)
	sink := &fuzzSink{t: t, closeAfter: closeAfter}
	_, err := xmpp.ReceiveSession(context.Background(), w, 0, headerOnly)
	if err != nil {
		if oneChunk {
			return streamRun{sink: sink, err: err, usage: w.usage()} // e.g. the header too big
		}
		t.Fatalf("stream header: %v", err)
	}
	w.established(0)
	err = newStanzaReader(w).run(sink, "gcm.googleapis.com")
	cond, abort := readCondition(err, w.readFailed())
	return streamRun{sink: sink, err: err, cond: cond, abort: abort, rerr: w.readFailed(), usage: w.usage()}
}

// readSessionOld is readSession on the path ccsd had before: mellium's
// decoder (with its own bufio read-ahead) and stream reader for the whole
// stream, and readStanzas over its tokens.
func readSessionOld(t *testing.T, in []byte, hdrLen, limit int, oneChunk bool, closeAfter int) streamRun {
	w := &wireConn{}
	w.sc.limit = limit
	w.sc.headers = maxStreamHeaders - 1
	sink := &fuzzSink{t: t, closeAfter: closeAfter}
	sess, err := xmpp.ReceiveSession(context.Background(), fuzzRW{w: w, src: sessionSource(in, hdrLen, oneChunk)}, 0, headerOnly)
	if err != nil {
		if oneChunk {
			return streamRun{sink: sink, err: err, usage: w.usage()}
		}
		t.Fatalf("stream header: %v", err)
	}
	w.established(0)
	r := sess.TokenReader()
	dr := &depthReader{r: r}
	err = readStanzas(dr, sink, "gcm.googleapis.com")
	_ = r.Close()
	cond, abort := readCondition(err, w.readFailed())
	return streamRun{sink: sink, err: err, cond: cond, abort: abort, rerr: w.readFailed(), usage: w.usage(), depth: dr.max}
}

// knownConditions are the stream errors the read path may end with ("" is
// a plain close).
var knownConditions = map[string]bool{"": true, "policy-violation": true, "not-well-formed": true, "unsupported-stanza-type": true}

// FuzzStreamReader fuzzes the whole post-negotiation read path with
// arbitrary bytes after a stream header and a well-formed message carrying
// the same bytes as payload. Properties:
//   - nothing panics, and the read ends with a known stream error or a
//     plain close;
//   - the reader never holds more than the stanza limit plus the decoder's
//     read-ahead, and neither the scanner nor the decoder nests past
//     MaxDepth;
//   - the message rendered around the bytes is delivered exactly, unless it
//     is past the size limit;
//   - the messages delivered are those a plain XML decoder finds, in order
//     (a prefix: the session stops at the first element it refuses);
//   - every IQ answer is well-formed XML;
//   - once closing, nothing is delivered or answered;
//   - reading one byte at a time gives the same result.
//
// FuzzStanzaScanner compares this path with the old one.
func FuzzStreamReader(f *testing.F) {
	// The golden stanzas, and in hostile/ what attackers sent (the nested
	// <a:stream> restarts among them).
	seeds, _ := filepath.Glob(filepath.Join("..", "testdata", "xmpp", "*.xml"))
	hostile, _ := filepath.Glob(filepath.Join("..", "testdata", "xmpp", "hostile", "*.xml"))
	if len(hostile) == 0 {
		f.Fatal("no seeds in testdata/xmpp/hostile")
	}
	for _, s := range append(seeds, hostile...) {
		if b, err := os.ReadFile(s); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		const limit = 2048
		lead := renderMessage("p", "", data)
		in := append(append([]byte(testStreamHeader), lead...), data...)
		ref, _ := parseAll(bytes.NewReader(in))
		var refMsgs []parsed
		for _, p := range ref {
			if p.Kind == kindMessage {
				refMsgs = append(refMsgs, parsed{Kind: kindMessage, ID: p.ID, Payload: p.Payload})
			}
		}
		for _, oneChunk := range []bool{false, true} {
			run := readSession(t, in, len(testStreamHeader), limit, oneChunk, -1)
			checkRun(t, run, limit, len(lead) <= limit, sanitizeXMLText(data), refMsgs)
			// The stanza reader's result does not depend on how the bytes
			// are split into reads.
			split := readSessionFrom(t, iotest.OneByteReader(bytes.NewReader(in)), limit, true, -1)
			sameRun(t, "one byte per read", run, split)
			// The same stream, closed after the first message.
			closed := readSession(t, in, len(testStreamHeader), limit, oneChunk, 1)
			if len(closed.sink.msgs) > 1 {
				t.Fatalf("%d messages delivered, closing after the first", len(closed.sink.msgs))
			}
		}
	})
}

// checkRun checks the properties of FuzzStreamReader on one run.
func checkRun(t *testing.T, run streamRun, limit int, leadFits bool, leadPayload string, refMsgs []parsed) {
	t.Helper()
	if !knownConditions[run.cond] {
		t.Fatalf("stream error %q (err %v)", run.cond, run.err)
	}
	if run.usage.peakHeld > limit+DecoderReadAhead {
		t.Fatalf("the reader held %d bytes, limit %d", run.usage.peakHeld, limit)
	}
	if run.usage.peakDepth > MaxDepth || run.depth > MaxDepth {
		t.Fatalf("the reader went %d levels deep (the decoder %d)", run.usage.peakDepth, run.depth)
	}
	msgs := run.sink.msgs
	if leadFits {
		if len(msgs) == 0 || msgs[0].ID != "p" || msgs[0].Payload != leadPayload {
			t.Fatalf("rendered message not delivered exactly: %v (err %v)", msgs, run.err)
		}
	} else if len(msgs) > 0 {
		t.Fatalf("delivered %v past the size limit", msgs)
	} else if run.cond != "policy-violation" && !errors.Is(run.err, errStanzaTooBig) {
		t.Fatalf("oversize message ended with %q (err %v)", run.cond, run.err)
	}
	if len(msgs) > len(refMsgs) {
		t.Fatalf("delivered %d messages, a plain decoder finds %d", len(msgs), len(refMsgs))
	}
	for i := range msgs {
		if msgs[i] != refMsgs[i] {
			t.Fatalf("message %d: delivered %+v, sent %+v", i, msgs[i], refMsgs[i])
		}
	}
	for _, a := range run.sink.answers {
		d := xml.NewDecoder(bytes.NewReader(a))
		for {
			_, err := d.Token()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("IQ answer %q: %v", a, err)
			}
		}
	}
}
