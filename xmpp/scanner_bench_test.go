package xmpp

import (
	"context"
	"io"
	"testing"

	"mellium.im/xmpp"
)

// repeatReader yields head, then body n times, without holding them all.
type repeatReader struct {
	head, body []byte
	n          int
	off        int // offset in the current piece
	inBody     bool
}

func (r *repeatReader) Read(p []byte) (int, error) {
	total := 0
	for len(p) > 0 {
		cur := r.head
		if r.inBody {
			if r.n == 0 {
				break
			}
			cur = r.body
		}
		k := copy(p, cur[r.off:])
		p, total, r.off = p[k:], total+k, r.off+k
		if r.off == len(cur) {
			r.off = 0
			if r.inBody {
				r.n--
			}
			r.inBody = true
		}
	}
	if total == 0 {
		return 0, io.EOF
	}
	return total, nil
}

// countSink counts what the read loop delivers.
type countSink struct{ msgs, bytes int }

func (s *countSink) closing() bool { return false }
func (s *countSink) message(_ string, p []byte) error {
	s.msgs++
	s.bytes += len(p)
	return nil
}
func (s *countSink) answer([]byte) error { return nil }
func (s *countSink) elementDone()        {}

// benchStanza is the message both read-path benchmarks read: a typical
// CCS downstream JSON the way Smack-style clients escape it.
var benchStanza = renderMessage("m-00000001", "", []byte(benchPayload))

// BenchmarkStanzaScanner measures the read path after negotiation as ccsd
// runs it, per message: the wire's byte scanner, then the CCS stanza
// scanner (no TLS, no network). Compare with BenchmarkStanzaDecoderOld.
func BenchmarkStanzaScanner(b *testing.B) {
	benchReadPath(b, func(src io.Reader, sink stanzaSink) error {
		w := &wireConn{src: src}
		w.sc.limit = DefaultMaxStanzaSize
		w.sc.headers = maxStreamHeaders - 1
		w.mute.Store(true)
		if _, err := xmpp.ReceiveSession(context.Background(), w, 0, headerOnly); err != nil {
			return err
		}
		w.established(0)
		return newStanzaReader(w).run(sink, "gcm.googleapis.com")
	})
}

// BenchmarkStanzaDecoderOld is BenchmarkStanzaScanner on the path ccsd had
// before: the byte scanner under mellium's decoder and token reader,
// readStanzas over the tokens.
func BenchmarkStanzaDecoderOld(b *testing.B) {
	benchReadPath(b, func(src io.Reader, sink stanzaSink) error {
		w := &wireConn{}
		w.sc.limit = DefaultMaxStanzaSize
		w.sc.headers = maxStreamHeaders - 1
		sess, err := xmpp.ReceiveSession(context.Background(), fuzzRW{w: w, src: src}, 0, headerOnly)
		if err != nil {
			return err
		}
		w.established(0)
		r := sess.TokenReader()
		defer r.Close()
		return readStanzas(r, sink, "gcm.googleapis.com")
	})
}

func benchReadPath(b *testing.B, read func(io.Reader, stanzaSink) error) {
	src := &repeatReader{head: []byte(testStreamHeader), body: benchStanza, n: b.N}
	sink := &countSink{}
	b.SetBytes(int64(len(benchStanza)))
	b.ReportAllocs()
	b.ResetTimer()
	err := read(src, sink)
	b.StopTimer()
	if sink.msgs != b.N {
		b.Fatalf("%d messages read of %d (%v)", sink.msgs, b.N, err)
	}
}

// BenchmarkFastParser is the CCS scanner alone on one complete message;
// BenchmarkRefParser the reference decoder (encoding/xml and the stream
// rules) on the same bytes, which the scanner falls back to.
func BenchmarkFastParser(b *testing.B) {
	ctx := contextOf(nil)
	b.SetBytes(int64(len(benchStanza)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		var p fastParser
		if _, _, err := p.element(benchStanza, ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRefParser: see BenchmarkFastParser.
func BenchmarkRefParser(b *testing.B) {
	ctx := contextOf(nil)
	b.SetBytes(int64(len(benchStanza)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, _, _, err := refParse(ctx, benchStanza); err != nil {
			b.Fatal(err)
		}
	}
}
