package xmpp

import (
	"encoding/xml"
	"strconv"
	"unicode/utf8"
)

// XML namespaces used on the wire.
const (
	nsClient   = "jabber:client"
	nsGCM      = "google:mobile:data"
	nsStanzas  = "urn:ietf:params:xml:ns:xmpp-stanzas"
	nsStreams  = "urn:ietf:params:xml:ns:xmpp-streams"
	nsSession  = "urn:ietf:params:xml:ns:xmpp-session"
	nsPing     = "urn:xmpp:ping"
	nsSASL     = "urn:ietf:params:xml:ns:xmpp-sasl"
	nsStream   = "http://etherx.jabber.org/streams"
	nsBind     = "urn:ietf:params:xml:ns:xmpp-bind"
	maxIDBytes = 256 // longer stanza ids are truncated in logs
)

// stanzaKind classifies a top-level element read from the stream.
type stanzaKind uint8

const (
	kindOther     stanzaKind = iota // not a stanza: unsupported-stanza-type
	kindMessage                     // <message/> with a gcm child
	kindIgnored                     // <presence/>, <message/> without gcm, IQ result/error
	kindIQGet                       // <iq type="get|set"/> that needs an answer
	kindIQInvalid                   // <iq/> with a bad type
)

// inStanza is what startStanza and readStanzaBody extract from one top-level
// element.
type inStanza struct {
	kind    stanzaKind
	name    string // local name of the element
	id      string // id attribute
	typ     string // type attribute
	from    string
	to      string
	payload []byte   // text of the gcm child (message) or nil
	child   xml.Name // first child element (IQ payload)
}

// startStanza classifies a top-level element from its start tag alone, so
// that an element that is not a stanza is refused before any more of it is
// read, and extracts the id/type/from/to attributes.
func startStanza(start xml.StartElement) inStanza {
	st := inStanza{name: start.Name.Local}
	if start.Name.Space != nsClient && start.Name.Space != "" {
		st.kind = kindOther
	} else {
		switch start.Name.Local {
		case "message":
			st.kind = kindIgnored // until a gcm child is found
		case "presence":
			st.kind = kindIgnored
		case "iq":
			st.kind = kindIQInvalid
		default:
			st.kind = kindOther
		}
	}
	for _, a := range start.Attr {
		if a.Name.Space != "" {
			continue
		}
		switch a.Name.Local {
		case "id":
			st.id = a.Value
		case "type":
			st.typ = a.Value
		case "from":
			st.from = a.Value
		case "to":
			st.to = a.Value
		}
	}
	if st.kind == kindIQInvalid {
		switch st.typ {
		case "get", "set":
			st.kind = kindIQGet
		case "result", "error":
			st.kind = kindIgnored
		}
	}
	return st
}

// readStanzaBody consumes the element that st (from startStanza) opened, up
// to and including its end element, from r, and extracts what the
// connection needs besides the attributes startStanza took: the text of the
// first <gcm xmlns="google:mobile:data"> child of a message (matched by
// namespace and local name, so any prefix works; CDATA and entities arrive
// decoded), and the name of the first child of an IQ.
func readStanzaBody(r xml.TokenReader, st inStanza) (inStanza, error) {
	isMessage := st.kind == kindIgnored && st.name == "message" && st.typ != "error"
	depth := 1
	inGCM := false
	found := false
	var payload []byte
	for depth > 0 {
		tok, err := r.Token()
		if err != nil {
			return st, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth == 2 {
				if st.child.Local == "" {
					st.child = t.Name
				}
				if isMessage && !found && t.Name.Local == "gcm" && t.Name.Space == nsGCM {
					inGCM = true
					found = true
					payload = []byte{}
				}
			}
		case xml.EndElement:
			depth--
			if depth == 1 {
				inGCM = false
			}
		case xml.CharData:
			if inGCM && depth == 2 {
				payload = append(payload, t...)
			}
		}
	}
	if found {
		st.kind = kindMessage
		st.payload = payload
	}
	return st, nil
}

// appendEscapedText appends s as XML character data: only '&', '<' and '>'
// are escaped (plus '\r', which a parser would otherwise normalise away).
// Characters that XML 1.0 cannot carry at all (C0 controls other than tab and
// newline, invalid UTF-8) are replaced with U+FFFD so that one bad payload
// cannot break the stream for the peer.
func appendEscapedText(dst, s []byte) []byte {
	valid := utf8.Valid(s)
	last := 0
	for i := 0; i < len(s); {
		b := s[i]
		var esc string
		width := 1
		switch {
		case b == '&':
			esc = "&amp;"
		case b == '<':
			esc = "&lt;"
		case b == '>':
			esc = "&gt;"
		case b == '\r':
			esc = "&#xD;"
		case b < 0x20 && b != '\t' && b != '\n':
			esc = "\uFFFD"
		case b >= 0x80:
			r, n := utf8.DecodeRune(s[i:])
			width = n
			if (!valid && r == utf8.RuneError && n == 1) || r == 0xFFFE || r == 0xFFFF {
				esc = "\uFFFD"
			} else {
				i += n
				continue
			}
		default:
			i++
			continue
		}
		dst = append(dst, s[last:i]...)
		dst = append(dst, esc...)
		i += width
		last = i
	}
	return append(dst, s[last:]...)
}

// appendEscapedAttr appends s as the value of a double-quoted attribute.
func appendEscapedAttr(dst []byte, s string) []byte {
	last := 0
	for i := 0; i < len(s); i++ {
		var esc string
		switch s[i] {
		case '&':
			esc = "&amp;"
		case '<':
			esc = "&lt;"
		case '>':
			esc = "&gt;"
		case '"':
			esc = "&quot;"
		case '\n':
			esc = "&#xA;"
		case '\r':
			esc = "&#xD;"
		case '\t':
			esc = "&#x9;"
		default:
			if s[i] < 0x20 {
				esc = "\uFFFD"
				break
			}
			continue
		}
		dst = append(dst, s[last:i]...)
		dst = append(dst, esc...)
		last = i + 1
	}
	return append(dst, s[last:]...)
}

const (
	gcmOpen  = `<gcm xmlns="google:mobile:data">`
	gcmClose = `</gcm>`
)

// appendMessage renders a GCM message stanza. typ "" writes no type attribute.
func appendMessage(dst []byte, id, typ, to string, payload []byte) []byte {
	dst = append(dst, `<message id="`...)
	dst = appendEscapedAttr(dst, id)
	dst = append(dst, '"')
	if typ != "" {
		dst = append(dst, ` type="`...)
		dst = appendEscapedAttr(dst, typ)
		dst = append(dst, '"')
	}
	if to != "" {
		dst = append(dst, ` to="`...)
		dst = appendEscapedAttr(dst, to)
		dst = append(dst, '"')
	}
	dst = append(dst, '>')
	dst = append(dst, gcmOpen...)
	dst = appendEscapedText(dst, payload)
	dst = append(dst, gcmClose...)
	return dst
}

// renderBounce returns the CCS stanza error of spec §4.4.
func renderBounce(id, to string, payload []byte, text string) []byte {
	b := make([]byte, 0, len(payload)+len(text)+len(to)+320)
	b = appendMessage(b, id, "error", to, payload)
	b = append(b, `<error code="400" type="modify"><bad-request xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/><text xmlns="urn:ietf:params:xml:ns:xmpp-stanzas">`...)
	b = appendEscapedText(b, []byte(text))
	b = append(b, `</text></error></message>`...)
	return b
}

// renderIQ returns an IQ answer: an empty result, or, when condition is set,
// an error of the given type and condition.
func renderIQ(st *inStanza, domainFrom string, errType, condition string) []byte {
	b := make([]byte, 0, 192)
	if condition == "" {
		b = append(b, `<iq type="result" id="`...)
	} else {
		b = append(b, `<iq type="error" id="`...)
	}
	b = appendEscapedAttr(b, st.id)
	b = append(b, '"')
	if st.to != "" {
		b = append(b, ` from="`...)
		b = appendEscapedAttr(b, st.to)
		b = append(b, '"')
	} else if domainFrom != "" {
		b = append(b, ` from="`...)
		b = appendEscapedAttr(b, domainFrom)
		b = append(b, '"')
	}
	if st.from != "" {
		b = append(b, ` to="`...)
		b = appendEscapedAttr(b, st.from)
		b = append(b, '"')
	}
	if condition == "" {
		return append(b, `/>`...)
	}
	b = append(b, `><error type="`...)
	b = append(b, errType...)
	b = append(b, `"><`...)
	b = append(b, condition...)
	b = append(b, ` xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/></error></iq>`...)
	return b
}

// validCondition reports whether c can be written as an element name.
func validCondition(c string) bool {
	if c == "" || len(c) > 64 {
		return false
	}
	for i := 0; i < len(c); i++ {
		b := c[i]
		if !(b >= 'a' && b <= 'z' || b == '-' || (i > 0 && b >= '0' && b <= '9')) {
			return false
		}
	}
	return true
}

// renderStreamError returns <stream:error> with the condition (and optional
// text) followed by the closing </stream:stream>.
func renderStreamError(condition, text string) []byte {
	if !validCondition(condition) {
		condition = "undefined-condition"
	}
	b := make([]byte, 0, 192+len(text))
	b = append(b, `<stream:error><`...)
	b = append(b, condition...)
	b = append(b, ` xmlns="urn:ietf:params:xml:ns:xmpp-streams"/>`...)
	if text != "" {
		b = append(b, `<text xmlns="urn:ietf:params:xml:ns:xmpp-streams">`...)
		b = appendEscapedText(b, []byte(text))
		b = append(b, `</text>`...)
	}
	b = append(b, `</stream:error></stream:stream>`...)
	return b
}

// renderStreamHeader returns the server's stream header, used only when a
// stream error must be sent before mellium wrote one.
func renderStreamHeader(from string) []byte {
	b := []byte(`<?xml version='1.0'?><stream:stream xmlns="jabber:client" xmlns:stream="http://etherx.jabber.org/streams" version="1.0" from="`)
	b = appendEscapedAttr(b, from)
	b = append(b, `" id="`...)
	b = strconv.AppendUint(b, randomUint64(), 16)
	b = append(b, `">`...)
	return b
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
