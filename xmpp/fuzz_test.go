package xmpp

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
	"unicode/utf8"
)

// scanReader runs a reader through the scanner the way wireConn.Read does.
type scanReader struct {
	r  io.Reader
	sc *scanner
}

func (s *scanReader) Read(p []byte) (int, error) {
	for {
		n, err := s.r.Read(p)
		kept, ferr := s.sc.filter(p[:n])
		if ferr != nil {
			return len(kept), ferr
		}
		if len(kept) > 0 || err != nil {
			return len(kept), err
		}
	}
}

const testStreamHeader = `<?xml version='1.0'?><stream:stream to='gcm.googleapis.com' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`

// parsed is the comparable result of readStanza.
type parsed struct {
	Kind    stanzaKind
	ID, Typ string
	Payload string
	Child   xml.Name
}

// parseAll decodes a stream the way a connection does after negotiation and
// returns the stanzas read before the first error.
func parseAll(r io.Reader) ([]parsed, error) {
	d := xml.NewDecoder(r)
	// Stream header (after the optional declaration).
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, err
		}
		if se, ok := tok.(xml.StartElement); ok {
			if se.Name.Local != "stream" {
				return nil, errors.New("no stream header")
			}
			break
		}
	}
	var out []parsed
	for len(out) < 10000 {
		tok, err := d.Token()
		if err != nil {
			return out, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			st, err := readStanza(d, t)
			if err != nil {
				return out, err
			}
			out = append(out, parsed{st.kind, st.id, st.typ, string(st.payload), st.child})
		case xml.EndElement:
			return out, io.EOF
		}
	}
	return out, nil
}

// sanitizeXMLText is what appendEscapedText promises to deliver: characters
// XML cannot carry become U+FFFD.
func sanitizeXMLText(b []byte) string {
	var sb strings.Builder
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		switch {
		case r == utf8.RuneError && n == 1,
			r < 0x20 && r != '\t' && r != '\n' && r != '\r',
			r == 0xFFFE || r == 0xFFFF:
			sb.WriteRune(utf8.RuneError)
		default:
			sb.Write(b[:n])
		}
		b = b[n:]
	}
	return sb.String()
}

// FuzzStanza fuzzes the read path (byte scanner under the XML decoder, then
// stanza extraction) with arbitrary bytes after a stream header, and the
// write path with arbitrary payloads. Properties:
//   - nothing panics;
//   - the scanner's output does not depend on how the input is split into
//     reads (state carried across reads is right);
//   - the scanner never changes a stanza: wherever the unfiltered decoder
//     reads stanzas, the filtered one reads the same ones;
//   - with a limit, no payload longer than the limit is ever extracted;
//   - any payload rendered by appendMessage parses back exactly (after
//     replacing what XML cannot carry).
func FuzzStanza(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("..", "testdata", "xmpp", "*.xml"))
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(`<message id="1"><gcm xmlns="google:mobile:data">{"a":"b"}</gcm></message>`))
	f.Add([]byte(` <iq type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq> `))
	f.Add([]byte(`<message><data:gcm xmlns:data="google:mobile:data"><![CDATA[<&>]]></data:gcm></message>`))
	f.Add([]byte("<message a='>' b=\"'\"><!-- c --><?pi x?><gcm xmlns='google:mobile:data'>\r\n</gcm></message></stream:stream>"))

	f.Fuzz(func(t *testing.T, data []byte) {
		in := append([]byte(testStreamHeader), data...)

		// Split-independence of the scanner.
		whole := scanner{limit: 1 << 20}
		a, errA := whole.filter(append([]byte(nil), in...))
		bytewise := scanner{limit: 1 << 20}
		var b []byte
		var errB error
		for i := range in {
			k, err := bytewise.filter([]byte{in[i]})
			b = append(b, k...)
			if err != nil {
				errB = err
				break
			}
		}
		if (errA == nil) != (errB == nil) || (errA == nil && !bytes.Equal(a, b)) {
			t.Fatalf("split-dependent scanner: %q/%v vs %q/%v", a, errA, b, errB)
		}

		// Differential: filtered vs unfiltered decoding.
		plain, _ := parseAll(bytes.NewReader(in))
		filtered, _ := parseAll(&scanReader{r: iotest.HalfReader(bytes.NewReader(in)), sc: &scanner{}})
		n := min(len(plain), len(filtered))
		if !reflect.DeepEqual(plain[:n], filtered[:n]) {
			t.Fatalf("filter changed stanzas:\n%v\n%v", plain[:n], filtered[:n])
		}

		// Limit.
		const limit = 512
		limited, err := parseAll(&scanReader{r: bytes.NewReader(in), sc: &scanner{limit: limit}})
		for _, p := range limited {
			if len(p.Payload) > limit {
				t.Fatalf("payload of %d bytes passed a %d-byte limit (err %v)", len(p.Payload), limit, err)
			}
		}

		// Write path round trip.
		msg := append([]byte(testStreamHeader), renderMessage("x", "normal", data)...)
		got, err := parseAll(&scanReader{r: bytes.NewReader(msg), sc: &scanner{}})
		if len(got) != 1 || got[0].Kind != kindMessage {
			t.Fatalf("rendered message did not parse: %v %v %q", got, err, msg)
		}
		if want := sanitizeXMLText(data); got[0].Payload != want {
			t.Fatalf("round trip: got %q want %q", got[0].Payload, want)
		}
		if got[0].ID != "x" || got[0].Typ != "normal" {
			t.Fatalf("attributes %+v", got[0])
		}
	})
}

// TestScanner pins the byte scanner on hand-made cases.
func TestScanner(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"<?xml version='1.0'?>\n<s:stream xmlns:s='x'>\n <a>  x  </a>\n\t<b/> ", "<?xml version='1.0'?><s:stream xmlns:s='x'><a>  x  </a><b/>"},
		{"<stream>\n<a x='>' y=\"' \">\n<![CDATA[ <b> ]] ]]>\n</a>\n", "<stream><a x='>' y=\"' \">\n<![CDATA[ <b> ]] ]]>\n</a>"},
		{"<stream> <!-- a > b --> <?p ?> <a> </a>", "<stream><!-- a > b --><?p ?><a> </a>"},
		// stream restart keeps depth 1: whitespace after it is still dropped.
		{"<stream:stream> <stream:stream> <a> </a> ", "<stream:stream><stream:stream><a> </a>"},
		// end of stream: depth 0.
		{"<stream> <a> </a> </stream> ", "<stream><a> </a></stream>"},
	} {
		sc := scanner{}
		got, err := sc.filter([]byte(tc.in))
		if err != nil || string(got) != tc.want {
			t.Errorf("filter(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

// TestScannerLimit: the count covers one top-level element (the stream
// header counts as one too) and is reset at its end; whitespace between
// elements is not counted.
func TestScannerLimit(t *testing.T) {
	sc := scanner{limit: 20}
	if _, err := sc.filter([]byte("<stream:stream>")); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		if _, err := sc.filter([]byte("<a>0123456789</a>    ")); err != nil {
			t.Fatalf("stanza %d: %v", i, err)
		}
	}
	if _, err := sc.filter([]byte("<a>0123456789012345</a>")); !errors.Is(err, errStanzaTooBig) {
		t.Fatalf("want errStanzaTooBig, got %v", err)
	}
}

// TestGoldenStanzas reads every golden stanza file in testdata/xmpp and checks
// its documented result (the first line, an XML comment, says what to expect).
func TestGoldenStanzas(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "testdata", "xmpp", "*.xml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		wantFile := strings.TrimSuffix(name, ".xml") + ".payload"
		want, err := os.ReadFile(wantFile)
		if err != nil {
			t.Fatalf("%s: %v", wantFile, err)
		}
		got, err := parseAll(&scanReader{r: bytes.NewReader(append([]byte(testStreamHeader), b...)), sc: &scanner{}})
		if len(got) != 1 {
			t.Fatalf("%s: %d stanzas (%v)", name, len(got), err)
		}
		if got[0].Payload != string(want) {
			t.Errorf("%s: payload %q, want %q", name, got[0].Payload, want)
		}
		// And the payload renders back to something that parses the same.
		again, _ := parseAll(bytes.NewReader(append([]byte(testStreamHeader), renderMessage("g", "", want)...)))
		if len(again) != 1 || again[0].Payload != string(want) {
			t.Errorf("%s: render round trip %v", name, again)
		}
	}
}

// TestScannerRestarts: only the first two stream headers (the opening one
// and the one after SASL success) are restarts, and none once negotiation
// has ended: later ones nest like any element, up to MaxDepth.
func TestScannerRestarts(t *testing.T) {
	sc := scanner{}
	if _, err := sc.filter([]byte("<stream:stream><a/> <stream:stream> ")); err != nil || sc.depth != 1 {
		t.Fatalf("depth %d, %v", sc.depth, err)
	}
	if _, err := sc.filter([]byte("<s:stream>")); err != nil || sc.depth != 2 {
		t.Fatalf("third header: depth %d, %v", sc.depth, err)
	}
	sc = scanner{}
	_, _ = sc.filter([]byte("<stream:stream>"))
	sc.established = true
	if _, err := sc.filter([]byte("<a:stream xmlns:a='urn:x'><a:stream>")); err != nil || sc.depth != 3 {
		t.Fatalf("after negotiation: depth %d, %v", sc.depth, err)
	}
}

// TestScannerDepth: MaxDepth levels below the stream pass; the start tag of
// one more fails the read, and its '>' is not handed on.
func TestScannerDepth(t *testing.T) {
	for _, selfClosing := range []bool{false, true} {
		sc := scanner{}
		_, _ = sc.filter([]byte("<stream:stream>"))
		ok := strings.Repeat("<a>", MaxDepth)
		if _, err := sc.filter([]byte(ok)); err != nil {
			t.Fatalf("%d levels: %v", MaxDepth, err)
		}
		last := "<b>"
		if selfClosing {
			last = "<b/>"
		}
		kept, err := sc.filter([]byte(last + "x"))
		if !errors.Is(err, errTooDeep) || !errors.Is(err, errStanzaTooBig) {
			t.Fatalf("%s at level %d: %v", last, MaxDepth+1, err)
		}
		if want := last[:len(last)-1]; string(kept) != want {
			t.Fatalf("kept %q, want %q", kept, want)
		}
		if sc.peakDepth-1 != MaxDepth {
			t.Fatalf("peak depth %d", sc.peakDepth-1)
		}
	}
}

// TestScannerLimitExact: an element of exactly the limit passes; the byte
// past it is not handed on.
func TestScannerLimitExact(t *testing.T) {
	el := "<a>" + strings.Repeat("x", 10) + "</a>" // 17 bytes
	sc := scanner{limit: len(el)}
	_, _ = sc.filter([]byte("<stream>"))
	if kept, err := sc.filter([]byte(el + " " + el)); err != nil || string(kept) != el+el {
		t.Fatalf("%q %v", kept, err)
	}
	kept, err := sc.filter([]byte("<a>" + strings.Repeat("y", 20)))
	if !errors.Is(err, errStanzaTooBig) || len(kept) != len(el) {
		t.Fatalf("kept %d bytes, %v", len(kept), err)
	}
}
