package xmpp

import (
	"bytes"
	"encoding/xml"
	"errors"
	"slices"
	"unicode/utf8"

	"mellium.im/xmpp/stream"
)

// errFallback is how fastParser declines a construct: the reference
// decoder (refParse) reads it instead.
var errFallback = errors.New("xmpp: left to the reference decoder")

// maxFastAttrs is the most attributes one tag may have on the fast path,
// maxFastNS the most namespace declarations open at once.
const (
	maxFastAttrs = 16
	maxFastNS    = 8
)

// fastParser is the CCS stanza scanner: it parses one complete top-level
// element from bytes, with no tokens and no allocation but the stanza's
// id, type, from, to and payload. It accepts only what it is sure
// encoding/xml (with mellium's stream reader above it) reads the same way:
// ASCII names with at most one colon, quoted attribute values, the five
// predefined entities and character references, CDATA, and characters XML
// allows. Anything else, malformed input included, returns errFallback:
// the reference decoder decides, so every answer is the generic one.
type fastParser struct {
	b     []byte
	i     int
	ctx   *streamCtx
	ns    [maxFastNS]fastNS // declarations of the open elements, innermost last
	nns   int
	open  [MaxDepth + 2]span // raw names of the open elements
	depth int
	// short: the parse stopped where the bytes end (an element still being
	// read), not at something it declines.
	short bool
}

// span is b[s:e].
type span struct{ s, e int }

// fastNS is a namespace declared by an open element.
type fastNS struct {
	prefix span
	uri    string
	depth  int
}

// fastAttr is one attribute of a tag.
type fastAttr struct {
	name  span
	colon int // index of the ':' in the name, or -1
	val   span
	plain bool // the value needs no decoding (no entity, no '\r')
}

// tag is a start tag.
type tag struct {
	name  span
	colon int
	empty bool // self-closing
	attrs [maxFastAttrs]fastAttr
	n     int
}

func (p *fastParser) bytesOf(s span) []byte { return p.b[s.s:s.e] }

// element parses the top-level element at the start of b and returns the
// stanza and the bytes it took, errUnsupportedStanza for an element that
// is not a stanza, or errFallback.
func (p *fastParser) element(b []byte, ctx *streamCtx) (st inStanza, n int, err error) {
	var t tag
	st, err = p.top(b, ctx, &t)
	if err != nil {
		return st, 0, err
	}
	if t.empty {
		return st, p.i, nil
	}
	p.open[1] = t.name
	if err := p.body(&st); err != nil {
		return st, 0, err
	}
	return st, p.i, nil
}

// startOnly checks the start tag at the start of b: nil if it opens a
// stanza, errUnsupportedStanza if not, or errFallback.
func (p *fastParser) startOnly(b []byte, ctx *streamCtx) error {
	var t tag
	_, err := p.top(b, ctx, &t)
	return err
}

// top parses the top-level start tag and classifies it as startStanza does.
func (p *fastParser) top(b []byte, ctx *streamCtx, t *tag) (st inStanza, err error) {
	p.b, p.ctx, p.i, p.nns = b, ctx, 0, 0
	if !p.startTag(t) {
		return st, errFallback
	}
	p.depth = 1
	if !p.pushNS(t) {
		return st, errFallback
	}
	space, ok := p.resolve(t.name, t.colon)
	if !ok || space == stream.NS {
		return st, errFallback // stream-level elements: mellium's rules
	}
	return p.classify(space, t)
}

// classify is startStanza on a parsed tag.
func (p *fastParser) classify(space string, t *tag) (st inStanza, err error) {
	local := p.b[t.name.s:t.name.e]
	if t.colon >= 0 {
		local = p.b[t.colon+1 : t.name.e]
	}
	st.kind = kindOther
	if space == nsClient || space == "" {
		switch string(local) {
		case "message":
			st.name, st.kind = "message", kindIgnored
		case "presence":
			st.name, st.kind = "presence", kindIgnored
		case "iq":
			st.name, st.kind = "iq", kindIQInvalid
		}
	}
	if st.kind == kindOther {
		return st, errUnsupportedStanza
	}
	for i := 0; i < t.n; i++ {
		a := &t.attrs[i]
		if a.colon >= 0 {
			prefix := p.b[a.name.s:a.colon]
			if string(prefix) == "xmlns" || string(prefix) == "xml" {
				continue
			}
			if uri, found := p.lookup(prefix); found && uri == "" {
				return st, errFallback // a prefix bound to no namespace
			}
			continue
		}
		switch string(p.bytesOf(a.name)) {
		case "id":
			st.id = p.attrString(a)
		case "type":
			st.typ = internType(p.attrBytes(a))
		case "from":
			st.from = p.attrString(a)
		case "to":
			st.to = p.attrString(a)
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
	return st, nil
}

// body reads the rest of the element as readStanzaBody does.
func (p *fastParser) body(st *inStanza) error {
	b := p.b
	isMessage := st.kind == kindIgnored && st.name == "message" && st.typ != "error"
	inGCM, found := false, false
	var payload []byte
	for p.depth > 0 {
		if p.i >= len(b) {
			p.short = true
			return errFallback
		}
		if b[p.i] != '<' {
			end, plain, ok, short := scanText(b, p.i, 0)
			if !ok {
				p.short = short
				return errFallback
			}
			if inGCM && p.depth == 2 {
				payload = appendText(payload, b[p.i:end], plain, false)
			}
			p.i = end
			continue
		}
		if p.i+1 >= len(b) {
			p.short = true
			return errFallback
		}
		switch b[p.i+1] {
		case '/':
			if !p.endTag() {
				return errFallback
			}
			if p.depth == 1 {
				inGCM = false
			}
		case '!':
			s, e, plain, ok, short := scanCDATA(b, p.i)
			if !ok {
				p.short = short
				return errFallback // a comment or a declaration: mellium refuses both
			}
			if inGCM && p.depth == 2 {
				payload = appendText(payload, b[s:e], plain, true)
			}
			p.i = e + len("]]>")
		case '?':
			return errFallback
		default:
			var t tag
			if !p.startTag(&t) || p.depth+1 >= len(p.open) {
				return errFallback
			}
			p.depth++
			if !p.pushNS(&t) {
				return errFallback
			}
			space, ok := p.resolve(t.name, t.colon)
			if !ok || space == stream.NS {
				return errFallback
			}
			if p.depth == 2 {
				local := p.bytesOf(t.name)
				if t.colon >= 0 {
					local = b[t.colon+1 : t.name.e]
				}
				if st.child.Local == "" {
					st.child = xml.Name{Space: p.spaceString(space, &t), Local: internLocal(local)}
				}
				if isMessage && !found && string(local) == "gcm" && space == nsGCM {
					inGCM, found = true, true
					payload = []byte{}
				}
			}
			if t.empty {
				p.popNS()
				p.depth--
				if p.depth == 1 {
					inGCM = false
				}
			} else {
				p.open[p.depth] = t.name
			}
		}
	}
	if found {
		st.kind = kindMessage
		st.payload = payload
	}
	return nil
}

// endTag reads </name> closing the innermost open element.
func (p *fastParser) endTag() bool {
	p.i += 2
	nm, _, ok := p.name()
	if !ok {
		return false
	}
	p.space()
	if p.i >= len(p.b) {
		p.short = true
		return false
	}
	if p.b[p.i] != '>' {
		return false
	}
	p.i++
	if !bytes.Equal(p.bytesOf(nm), p.bytesOf(p.open[p.depth])) {
		return false // encoding/xml's error, word for word
	}
	p.popNS()
	p.depth--
	return true
}

// unboundSpace marks an element prefix no declaration binds: encoding/xml
// then uses the prefix itself as the namespace, which (having no colon)
// equals none of the namespaces compared with.
const unboundSpace = "\x00unbound"

// resolve returns the namespace of an element name as encoding/xml's
// translate does; ok false for the prefixes it treats specially.
func (p *fastParser) resolve(nm span, colon int) (string, bool) {
	if colon < 0 {
		if string(p.bytesOf(nm)) == "xmlns" {
			return "", false
		}
		uri, _ := p.lookup(nil)
		return uri, true
	}
	prefix := p.b[nm.s:colon]
	if string(prefix) == "xml" || string(prefix) == "xmlns" {
		return "", false
	}
	if uri, found := p.lookup(prefix); found {
		return uri, true
	}
	return unboundSpace, true
}

// spaceString is the namespace to record for a resolved element name.
func (p *fastParser) spaceString(space string, t *tag) string {
	if space == unboundSpace {
		return string(p.b[t.name.s:t.colon])
	}
	return space
}

// lookup finds the namespace bound to prefix ("" or nil: the default).
func (p *fastParser) lookup(prefix []byte) (string, bool) {
	for i := p.nns - 1; i >= 0; i-- {
		if bytes.Equal(p.bytesOf(p.ns[i].prefix), prefix) {
			return p.ns[i].uri, true
		}
	}
	return p.ctx.lookup(prefix)
}

// pushNS declares the namespaces of a start tag at the current depth; false
// past maxFastNS.
func (p *fastParser) pushNS(t *tag) bool {
	for i := 0; i < t.n; i++ {
		a := &t.attrs[i]
		var prefix span
		switch {
		case a.colon < 0 && string(p.bytesOf(a.name)) == "xmlns":
			prefix = span{a.name.s, a.name.s}
		case a.colon >= 0 && string(p.b[a.name.s:a.colon]) == "xmlns":
			prefix = span{a.colon + 1, a.name.e}
		default:
			continue
		}
		if p.nns == maxFastNS {
			return false
		}
		p.ns[p.nns] = fastNS{prefix: prefix, uri: internURI(p.attrValue(a), a.plain), depth: p.depth}
		p.nns++
	}
	return true
}

// popNS forgets the declarations of the innermost open element.
func (p *fastParser) popNS() {
	for p.nns > 0 && p.ns[p.nns-1].depth == p.depth {
		p.nns--
	}
}

// attrValue returns the raw bytes of a's value.
func (p *fastParser) attrValue(a *fastAttr) []byte { return p.bytesOf(a.val) }

// attrBytes returns a's decoded value (the raw bytes when plain).
func (p *fastParser) attrBytes(a *fastAttr) []byte {
	if a.plain {
		return p.attrValue(a)
	}
	return decodeText(nil, p.attrValue(a))
}

// attrString returns a's decoded value.
func (p *fastParser) attrString(a *fastAttr) string {
	v := p.attrValue(a)
	if a.plain {
		return string(v)
	}
	return string(decodeText(nil, v))
}

// startTag reads a start tag at p.i ('<').
func (p *fastParser) startTag(t *tag) bool {
	p.i++
	var ok bool
	if t.name, t.colon, ok = p.name(); !ok {
		return false
	}
	b := p.b
	for {
		p.space()
		if p.i >= len(b) {
			p.short = true
			return false
		}
		switch b[p.i] {
		case '>':
			p.i++
			return true
		case '/':
			if p.i+1 >= len(b) {
				p.short = true
				return false
			}
			if b[p.i+1] != '>' {
				return false
			}
			p.i += 2
			t.empty = true
			return true
		}
		if t.n == maxFastAttrs {
			return false
		}
		a := &t.attrs[t.n]
		t.n++
		if a.name, a.colon, ok = p.name(); !ok {
			return false
		}
		if !p.expect('=') {
			return false
		}
		p.space()
		if p.i >= len(b) {
			p.short = true
			return false
		}
		q := b[p.i]
		if q != '"' && q != '\'' {
			return false
		}
		p.i++
		end, plain, ok, short := scanText(b, p.i, q)
		if !ok {
			p.short = short
			return false
		}
		a.val, a.plain = span{p.i, end}, plain
		p.i = end + 1
	}
}

// expect skips spaces and then c.
func (p *fastParser) expect(c byte) bool {
	p.space()
	if p.i >= len(p.b) {
		p.short = true
		return false
	}
	if p.b[p.i] != c {
		return false
	}
	p.i++
	return true
}

// name reads an ASCII XML name with at most one colon, neither first nor
// last.
func (p *fastParser) name() (nm span, colon int, ok bool) {
	b := p.b
	i := p.i
	if i >= len(b) {
		p.short = true
		return nm, -1, false
	}
	if !isNameStart(b[i]) {
		return nm, -1, false
	}
	colon = -1
	for i++; i < len(b); i++ {
		c := b[i]
		if c >= utf8.RuneSelf {
			return nm, -1, false
		}
		if !isNameByte(c) {
			break
		}
		if c == ':' {
			if colon >= 0 {
				return nm, -1, false
			}
			colon = i
		}
	}
	if colon == i-1 {
		return nm, -1, false
	}
	nm = span{p.i, i}
	p.i = i
	return nm, colon, true
}

func (p *fastParser) space() {
	for p.i < len(p.b) && isSpace(p.b[p.i]) {
		p.i++
	}
}

func isNameStart(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || c == '_'
}

func isNameByte(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' ||
		'0' <= c && c <= '9' || c == '_' || c == ':' || c == '.' || c == '-'
}

// isXMLChar is encoding/xml's isInCharacterRange.
func isXMLChar(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D ||
		r >= 0x20 && r <= 0xD7FF ||
		r >= 0xE000 && r <= 0xFFFD ||
		r >= 0x10000 && r <= 0x10FFFF
}

// scanText checks character data from b[i]: up to the next '<' (q == 0) or
// up to the closing quote q of an attribute value. plain: no entity and no
// '\r', so the bytes are the text. ok false for anything encoding/xml
// refuses (or that the fast path leaves to it); short when that is only
// because the bytes end (an attribute value, a reference or a character
// cut off).
func scanText(b []byte, i int, q byte) (end int, plain, ok, short bool) {
	plain = true
	for i < len(b) {
		for i < len(b) && textClass[b[i]] == 0 {
			i++ // the common bytes, in a tight loop
		}
		if i == len(b) {
			break
		}
		c := b[i]
		switch {
		case c == q && q != 0:
			return i, plain, true, false
		case c == '<':
			if q != 0 {
				return 0, false, false, false
			}
			return i, plain, true, false
		case c == '&':
			n, _, ok := entity(b, i)
			if !ok {
				return 0, false, false, entityPrefix(b[i+1:])
			}
			plain = false
			i += n
			continue
		case c == '\r':
			plain = false
		case c == '>':
			if q == 0 && i >= 2 && b[i-1] == ']' && b[i-2] == ']' {
				return 0, false, false, false // "]]>" outside CDATA
			}
		case c < 0x20:
			if c != '\t' && c != '\n' {
				return 0, false, false, false
			}
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size == 1 || !isXMLChar(r) {
				return 0, false, false, !utf8.FullRune(b[i:])
			}
			i += size
			continue
		}
		i++
	}
	if q != 0 {
		return 0, false, false, true
	}
	return len(b), plain, true, false
}

// textClass is 0 for the bytes scanText passes over without a look: ASCII
// from ' ' up, but for the markup and quote characters, plus tab and
// newline.
var textClass = func() (t [256]uint8) {
	for c := 0; c < 256; c++ {
		switch {
		case c == '\t' || c == '\n':
		case c < 0x20 || c >= utf8.RuneSelf:
			t[c] = 1
		case c == '<' || c == '>' || c == '&' || c == '"' || c == '\'':
			t[c] = 1
		}
	}
	return t
}()

// entity reads the reference at b[i] ('&'): one of the five predefined
// entities or a character reference, as encoding/xml decodes it (a
// surrogate becomes U+FFFD). n is its length.
func entity(b []byte, i int) (n int, r rune, ok bool) {
	rest := b[i+1:]
	for _, e := range [...]struct {
		name string
		r    rune
	}{{"amp;", '&'}, {"lt;", '<'}, {"gt;", '>'}, {"quot;", '"'}, {"apos;", '\''}} {
		if len(rest) >= len(e.name) && string(rest[:len(e.name)]) == e.name {
			return 1 + len(e.name), e.r, true
		}
	}
	if len(rest) == 0 || rest[0] != '#' {
		return 0, 0, false
	}
	j := 1
	base := rune(10)
	if j < len(rest) && rest[j] == 'x' {
		base = 16
		j++
	}
	digits := 0
	var v rune
	for ; j < len(rest); j++ {
		d := hexDigit(rest[j])
		if d < 0 || d >= base {
			break
		}
		v = v*base + d
		digits++
		if v > utf8.MaxRune {
			return 0, 0, false
		}
	}
	if digits == 0 || j >= len(rest) || rest[j] != ';' {
		return 0, 0, false
	}
	if 0xD800 <= v && v <= 0xDFFF {
		v = utf8.RuneError // string(rune(v)) in encoding/xml
	}
	if !isXMLChar(v) {
		return 0, 0, false
	}
	return 1 + j + 1, v, true
}

var cdataEnd = []byte("]]>")

// entityPrefix reports whether rest (what follows a '&' up to the end of
// the bytes) can still become a reference the fast path reads.
func entityPrefix(rest []byte) bool {
	for _, name := range [...]string{"amp;", "lt;", "gt;", "quot;", "apos;"} {
		if len(rest) < len(name) && string(rest) == name[:len(rest)] {
			return true
		}
	}
	if len(rest) == 0 || rest[0] != '#' {
		return false
	}
	rest = rest[1:]
	base := rune(10)
	if len(rest) > 0 && rest[0] == 'x' {
		base, rest = 16, rest[1:]
	}
	var v rune
	for _, c := range rest {
		d := hexDigit(c)
		if d < 0 || d >= base {
			return false
		}
		if v = v*base + d; v > utf8.MaxRune {
			return false
		}
	}
	return true
}

func hexDigit(c byte) rune {
	switch {
	case '0' <= c && c <= '9':
		return rune(c - '0')
	case 'a' <= c && c <= 'f':
		return rune(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return rune(c-'A') + 10
	}
	return -1
}

// scanCDATA checks a CDATA section at b[i] ("<![CDATA[") and returns its
// content b[s:e]; ok false for anything else (a comment, a declaration) or
// a character XML refuses, short when the section is not complete yet.
func scanCDATA(b []byte, i int) (s, e int, plain, ok, short bool) {
	const open = "<![CDATA["
	if len(b)-i < len(open) || string(b[i:i+len(open)]) != open {
		n := min(len(b)-i, len(open))
		return 0, 0, false, false, n < len(open) && string(b[i:i+n]) == open[:n]
	}
	s = i + len(open)
	k := bytes.Index(b[s:], cdataEnd)
	if k < 0 {
		return 0, 0, false, false, true
	}
	e = s + k
	plain = true
	for j := s; j < e; {
		c := b[j]
		switch {
		case c == '\r':
			plain = false
		case c < 0x20 && c != '\t' && c != '\n':
			return 0, 0, false, false, false
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRune(b[j:e])
			if r == utf8.RuneError && size == 1 || !isXMLChar(r) {
				return 0, 0, false, false, false
			}
			j += size
			continue
		}
		j++
	}
	return s, e, plain, true, false
}

// appendText appends text checked by scanText or scanCDATA.
func appendText(dst, seg []byte, plain, cdata bool) []byte {
	if plain {
		return append(dst, seg...)
	}
	return decodeChars(dst, seg, !cdata)
}

// decodeText decodes text or an attribute value checked by scanText.
func decodeText(dst, seg []byte) []byte { return decodeChars(dst, seg, true) }

// decodeChars appends seg with '\r' and "\r\n" turned into '\n' and, with
// refs, its references decoded (a '\r' from a reference stays), as
// encoding/xml does. CDATA has no references.
func decodeChars(dst, seg []byte, refs bool) []byte {
	dst = slices.Grow(dst, len(seg)) // decoding never lengthens
	cr := false
	last := 0 // seg[last:i] is still to copy
	for i := 0; i < len(seg); {
		c := seg[i]
		if c != '&' && c != '\r' && c != '\n' {
			i++
			continue
		}
		dst = append(dst, seg[last:i]...)
		switch {
		case c == '&' && refs:
			n, r, _ := entity(seg, i) // checked by scanText
			dst = utf8.AppendRune(dst, r)
			i += n
			cr = false
			last = i
			continue
		case c == '\r':
			dst = append(dst, '\n')
			cr = true
		case c == '\n' && cr:
			cr = false
		default:
			dst = append(dst, c)
			cr = false
		}
		i++
		last = i
	}
	return append(dst, seg[last:]...)
}

// internURI returns the namespace of a declaration, without allocating for
// the ones CCS uses.
func internURI(v []byte, plain bool) string {
	if !plain {
		return string(decodeText(nil, v))
	}
	switch string(v) {
	case nsGCM:
		return nsGCM
	case nsClient:
		return nsClient
	case nsPing:
		return nsPing
	case nsSession:
		return nsSession
	case nsStanzas:
		return nsStanzas
	case stream.NS:
		return stream.NS
	case "":
		return ""
	}
	return string(v)
}

// internType returns a type attribute, without allocating for the usual ones.
func internType(v []byte) string {
	switch string(v) {
	case "":
		return ""
	case "normal":
		return "normal"
	case "error":
		return "error"
	case "chat":
		return "chat"
	case "get":
		return "get"
	case "set":
		return "set"
	case "result":
		return "result"
	}
	return string(v)
}

// internLocal returns the local name of an IQ's child.
func internLocal(v []byte) string {
	switch string(v) {
	case "ping":
		return "ping"
	case "session":
		return "session"
	case "gcm":
		return "gcm"
	}
	return string(v)
}
