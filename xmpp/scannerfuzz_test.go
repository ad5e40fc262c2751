package xmpp

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
	"testing/iotest"
)

// scannerSeeds returns every stanza file of testdata/xmpp: the golden
// stanzas, hostile/ and scanner/ (edge cases of the CCS scanner: entities,
// CDATA with '\r', prefixes, comments, non-ASCII names, attribute forms,
// unbound and empty prefixes, stream-level elements, malformed input).
func scannerSeeds(f *testing.F) {
	f.Helper()
	var files []string
	for _, dir := range []string{"", "hostile", "scanner"} {
		m, _ := filepath.Glob(filepath.Join("..", "testdata", "xmpp", dir, "*.xml"))
		if len(m) == 0 {
			f.Fatalf("no seeds in testdata/xmpp/%s", dir)
		}
		files = append(files, m...)
	}
	for _, name := range files {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b)
		}
	}
}

// sameRun fails unless two runs acted alike: the same messages (ids and
// payloads), the same IQ answers byte for byte, the same stream error and
// the same abort.
func sameRun(t *testing.T, what string, want, got streamRun) {
	t.Helper()
	if !reflect.DeepEqual(want.sink.msgs, got.sink.msgs) {
		t.Fatalf("%s: messages\nwant %+v\ngot  %+v\n(errors %v / %v)", what, want.sink.msgs, got.sink.msgs, want.err, got.err)
	}
	if !reflect.DeepEqual(want.sink.answers, got.sink.answers) {
		t.Fatalf("%s: IQ answers\nwant %q\ngot  %q", what, want.sink.answers, got.sink.answers)
	}
	if want.cond != got.cond && tooBigEither(want, got) {
		// The read that hit the size limit also carried the bytes before
		// it, up to where that read began: a syntax error among them was
		// met with the limit already known (policy-violation) or before
		// it, depending on how the bytes were split into reads. The old
		// decoder read in other pieces than the stanza reader (its own
		// bufio.Reader), so either answer is the old code's for some
		// split of the same bytes.
		return
	}
	if want.cond != got.cond || want.abort != got.abort {
		t.Fatalf("%s: stream end %q abort %v (err %v), want %q abort %v (err %v)",
			what, got.cond, got.abort, got.err, want.cond, want.abort, want.err)
	}
}

// tooBigEither reports whether a run's reading failed at the size or depth
// limit, with the other answering a syntax or stanza error.
func tooBigEither(a, b streamRun) bool {
	for _, r := range [][2]streamRun{{a, b}, {b, a}} {
		if errors.Is(r[0].rerr, errStanzaTooBig) && r[0].cond == "policy-violation" &&
			(r[1].cond == "not-well-formed" || r[1].cond == "unsupported-stanza-type" || r[1].cond == "policy-violation") {
			return true
		}
	}
	return false
}

// FuzzStanzaScanner is the differential fuzz target of the CCS stanza
// scanner: on the same bytes after a stream header, the stanza reader (the
// scanner, falling back to encoding/xml per construct) and the old path
// (mellium's decoder and token reader for the whole stream, readStanzas)
// must deliver the same messages, answer the same IQs and end the stream
// the same way, with and without a size limit, whether the stanzas arrive
// after the header or read ahead with it.
func FuzzStanzaScanner(f *testing.F) {
	scannerSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		in := append([]byte(testStreamHeader), data...)
		for _, limit := range []int{1 << 20, 512} {
			for _, oneChunk := range []bool{false, true} {
				old := readSessionOld(t, in, len(testStreamHeader), limit, oneChunk, -1)
				got := readSession(t, in, len(testStreamHeader), limit, oneChunk, -1)
				sameRun(t, "scanner vs decoder", old, got)
			}
		}
	})
}

// TestScannerSeeds runs the differential check on every seed with a
// readable name, so that a failure says which file.
func TestScannerSeeds(t *testing.T) {
	for _, dir := range []string{"", "hostile", "scanner"} {
		files, _ := filepath.Glob(filepath.Join("..", "testdata", "xmpp", dir, "*.xml"))
		for _, name := range files {
			b, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			t.Run(filepath.Join(dir, filepath.Base(name)), func(t *testing.T) {
				in := append([]byte(testStreamHeader), b...)
				old := readSessionOld(t, in, len(testStreamHeader), 1<<20, false, -1)
				got := readSession(t, in, len(testStreamHeader), 1<<20, false, -1)
				t.Logf("%d messages %+v, %d answers, end %q abort %v (%v)", len(got.sink.msgs), got.sink.msgs, len(got.sink.answers), got.cond, got.abort, got.err)
				sameRun(t, "scanner vs decoder", old, got)
				split := readSessionFrom(t, iotest.OneByteReader(bytes.NewReader(in)), 1<<20, false, -1)
				sameRun(t, "one byte per read", got, split)
			})
		}
	}
}

// TestFastPathTaken: the stanzas CCS clients send are read by the CCS
// scanner itself, not handed to the reference decoder.
func TestFastPathTaken(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("..", "testdata", "xmpp", "*.xml"))
	files = append(files, filepath.Join("..", "testdata", "xmpp", "scanner", "prefixes.xml"),
		filepath.Join("..", "testdata", "xmpp", "scanner", "entities.xml"),
		filepath.Join("..", "testdata", "xmpp", "scanner", "cdata-cr.xml"))
	ctx := contextOf(nil)
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		var p fastParser
		st, n, err := p.element(b, ctx)
		if err != nil || st.kind != kindMessage {
			t.Errorf("%s: %v, kind %d", name, err, st.kind)
			continue
		}
		if rest := bytes.TrimSpace(b[n:]); len(rest) > 0 && !bytes.HasPrefix(rest, []byte("<message")) {
			t.Errorf("%s: consumed %d of %d bytes", name, n, len(b))
		}
	}
	for _, iq := range []string{
		`<iq type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>`,
		`<iq type="set" id="s"><session xmlns="urn:ietf:params:xml:ns:xmpp-session"/></iq>`,
		`<presence/>`,
	} {
		var p fastParser
		if _, _, err := p.element([]byte(iq), ctx); err != nil {
			t.Errorf("%s: %v", iq, err)
		}
	}
}

// TestStreamContext: the context of a client's header knows its
// namespaces and its end tag, is shared by identical headers, and a
// prefixed default namespace or another stream prefix is read as written.
func TestStreamContext(t *testing.T) {
	hdr := []byte(`<stream:stream to='gcm.googleapis.com' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`)
	a, b := contextOf(hdr), contextOf(append([]byte(nil), hdr...))
	if a != b || !a.fast {
		t.Fatalf("identical headers: %p %p fast %v", a, b, a.fast)
	}
	if uri, ok := a.lookup(nil); !ok || uri != nsClient {
		t.Fatalf("default namespace %q %v", uri, ok)
	}
	if !a.isStreamEnd([]byte("</stream:stream>")) || a.isStreamEnd([]byte("</stream:stream >")) {
		t.Fatal("end tag")
	}
	s := contextOf([]byte(`<s:stream xmlns:s='http://etherx.jabber.org/streams' xmlns='jabber:client' id='x'>`))
	if !s.isStreamEnd([]byte("</s:stream>")) || s.isStreamEnd([]byte("</stream:stream>")) {
		t.Fatalf("s: prefix: end %q", s.end)
	}
	if string(s.header) != `<s:stream xmlns:s="http://etherx.jabber.org/streams" xmlns="jabber:client">` {
		t.Fatalf("rebuilt header %q", s.header)
	}
}

// chunkReader returns at most n bytes per Read.
type chunkReader struct {
	r io.Reader
	n int
}

func (c chunkReader) Read(p []byte) (int, error) { return c.r.Read(p[:min(len(p), c.n)]) }

// TestReaderManySmallStanzas: with a small stanza limit, a long run of
// stanzas arriving in reads that end mid-stanza is read whole: the buffer
// compacts and grows by what it holds unconsumed, not by what it consumed.
func TestReaderManySmallStanzas(t *testing.T) {
	var in bytes.Buffer
	in.WriteString(testStreamHeader)
	const n = 500
	for i := 0; i < n; i++ {
		in.Write(renderMessage(strconv.Itoa(i), "", bytes.Repeat([]byte{'p'}, 300+i%97)))
	}
	for _, size := range []int{700, 4096, 9000} {
		run := readSessionFrom(t, chunkReader{bytes.NewReader(in.Bytes()), size}, 512, false, -1)
		if len(run.sink.msgs) != n {
			t.Fatalf("reads of %d: %d messages of %d (err %v)", size, len(run.sink.msgs), n, run.err)
		}
		for i, m := range run.sink.msgs {
			if m.ID != strconv.Itoa(i) || len(m.Payload) != 300+i%97 {
				t.Fatalf("message %d: %q, %d bytes", i, m.ID, len(m.Payload))
			}
		}
	}
}
