package xmpp

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"strings"

	"mellium.im/xmpp/stream"
)

// The reference path: encoding/xml, with mellium's stream-level rules above
// it, on one construct at a time. The stanza reader uses it for whatever
// the CCS scanner declines (rare: comments, processing instructions,
// non-ASCII names, malformed input, stream-level elements), so that the
// answer to those is exactly what mellium's token reader gave; the
// differential fuzz target (FuzzStanzaScanner) compares both paths.

// streamTokens is mellium's stream-level token reader after negotiation
// (mellium.im/xmpp/internal/stream.Reader, which cannot be imported),
// rule for rule: text between stanzas must be whitespace, an element in the
// stream namespace at any depth ends the read (a stream error is decoded
// and returned), </stream:stream> is io.EOF, and processing instructions,
// comments and directives are refused.
type streamTokens struct {
	r     xml.TokenReader
	depth int
}

// Errors of streamTokens, as mellium words them.
var (
	errUnknownStreamElement = errors.New("xmpp: unknown stream level element")
	errUnexpectedRestart    = errors.New("xmpp: unexpected stream restart")
)

// Token implements xml.TokenReader.
func (s *streamTokens) Token() (xml.Token, error) {
	tok, err := s.r.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case xml.CharData:
		if s.depth == 0 && len(bytes.TrimLeft(t, " \t\r\n")) != 0 {
			return t, errors.New("xmpp: unexpected stream-level chardata")
		}
	case xml.StartElement:
		s.depth++
		if t.Name.Space != stream.NS {
			return tok, nil
		}
		switch t.Name.Local {
		case "error":
			e := stream.Error{}
			if err := xml.NewTokenDecoder(s.r).DecodeElement(&e, &t); err != nil {
				return nil, err
			}
			return nil, e
		case "stream":
			return nil, errUnexpectedRestart
		default:
			return nil, errUnknownStreamElement
		}
	case xml.EndElement:
		s.depth--
		if t.Name.Space != stream.NS {
			return tok, nil
		}
		if t.Name.Local == "stream" {
			return nil, io.EOF
		}
		return nil, stream.BadFormat
	case xml.ProcInst:
		return nil, errors.New("disallowed XML proc inst encountered")
	case xml.Comment:
		return nil, errors.New("disallowed XML comment encountered")
	case xml.Directive:
		return nil, errors.New("disallowed XML directive encountered")
	}
	return tok, nil
}

// refDecoder returns a decoder positioned inside the stream header of ctx,
// reading b.
func refDecoder(ctx *streamCtx, b []byte) (*xml.Decoder, error) {
	in := make([]byte, 0, len(ctx.header)+len(b))
	in = append(append(in, ctx.header...), b...)
	d := xml.NewDecoder(bytes.NewReader(in))
	if _, err := d.Token(); err != nil {
		return nil, err
	}
	return d, nil
}

// refParse reads one construct from b with the reference decoder: a
// stanza (isStanza), or something between stanzas that is skipped (n
// bytes), or the error that ends the stream. errNeedMore: b ends before it.
func refParse(ctx *streamCtx, b []byte) (st inStanza, n int, isStanza bool, err error) {
	d, err := refDecoder(ctx, b)
	if err != nil {
		return st, 0, false, err
	}
	tr := &streamTokens{r: d}
	tok, err := tr.Token()
	if err != nil {
		return st, 0, false, needMore(err)
	}
	start, ok := tok.(xml.StartElement)
	if !ok {
		return st, int(d.InputOffset()) - len(ctx.header), false, nil
	}
	st = startStanza(start)
	if st.kind == kindOther {
		return st, 0, false, errUnsupportedStanza
	}
	st, err = readStanzaBody(tr, st)
	if err != nil {
		return st, 0, false, needMore(err)
	}
	return st, int(d.InputOffset()) - len(ctx.header), true, nil
}

// refCheckStart is checkStart with the reference decoder: b ends with the
// start tag of an element not yet complete.
func refCheckStart(ctx *streamCtx, b []byte) error {
	d, err := refDecoder(ctx, b)
	if err != nil {
		return err
	}
	tr := &streamTokens{r: d}
	for {
		tok, err := tr.Token()
		if err != nil {
			return needMore(err)
		}
		if start, ok := tok.(xml.StartElement); ok {
			if startStanza(start).kind == kindOther {
				return errUnsupportedStanza
			}
			return nil
		}
	}
}

// needMore turns the decoder's error at the end of the bytes given into
// errNeedMore.
func needMore(err error) error {
	var syn *xml.SyntaxError
	if errors.As(err, &syn) && strings.HasPrefix(syn.Msg, "unexpected EOF") || errors.Is(err, io.ErrUnexpectedEOF) {
		return errNeedMore
	}
	return err
}

// refProbe reads the tokens of b, the start of a construct not complete
// yet: the error the decoder meets in it, or errNeedMore.
//
// textOpen says the bytes end inside text (character data, an attribute
// value, CDATA): the decoder checks text once it ends, so an illegal
// character found only because the bytes end is not an error yet.
func refProbe(ctx *streamCtx, b []byte, textOpen bool) error {
	d, err := refDecoder(ctx, b)
	if err != nil {
		return err
	}
	tr := &streamTokens{r: d}
	end := int64(len(ctx.header) + len(b))
	for {
		tok, err := tr.Token()
		if _, text := tok.(xml.CharData); text && d.InputOffset() == end {
			return errNeedMore // the text may go on: the decoder waits for '<'
		}
		if err != nil {
			var syn *xml.SyntaxError
			if textOpen && d.InputOffset() >= end && errors.As(err, &syn) &&
				(strings.HasPrefix(syn.Msg, "illegal character code") || syn.Msg == "invalid UTF-8") {
				// Text is checked once it ends; here it ends only
				// because the bytes do: the decoder would read on.
				return errNeedMore
			}
			return needMore(err)
		}

		if start, ok := tok.(xml.StartElement); ok && tr.depth == 1 {
			if startStanza(start).kind == kindOther {
				return errUnsupportedStanza
			}
		}
	}
}
