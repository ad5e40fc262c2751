package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// gcmNS is the namespace of the element that carries CCS JSON.
const gcmNS = "google:mobile:data"

// stanza is one top-level element read from a stream. Its byte slices are
// reused by the next read: a handler must copy what it keeps.
type stanza struct {
	name    string // local name: message, iq, success, error, ...
	space   string // namespace of the element
	typ     string // type attribute
	id      string // id attribute
	child   string // local name of the first child element
	hasGCM  bool
	inGCM   bool
	payload []byte // text of the google:mobile:data gcm child
	text    []byte // all other character data below the element
}

func (s *stanza) reset() {
	s.name, s.space, s.typ, s.id, s.child = "", "", "", "", ""
	s.hasGCM, s.inGCM = false, false
	s.payload, s.text = s.payload[:0], s.text[:0]
}

func (s *stanza) String() string {
	return fmt.Sprintf("<%s type=%q id=%q child=%q>%s%s", s.name, s.typ, s.id, s.child, s.payload, s.text)
}

// xconn is one client XMPP connection built for throughput: after
// negotiation one goroutine reads and hands every stanza to a handler (in
// that goroutine, so the handler must not block), and one goroutine writes
// whatever was queued since its last write in a single TLS write.
type xconn struct {
	name string // for messages: "app-server 2", "device 17"
	conn *tls.Conn
	dec  *xml.Decoder
	jid  string

	mu    sync.Mutex
	out   []byte // queued, not yet written
	spare []byte // the buffer the writer last wrote, for reuse
	kick  chan struct{}

	stop      chan struct{} // closed to make the writer flush and exit
	wdone     chan struct{}
	rdone     chan struct{}
	closing   atomic.Bool
	closeOnce sync.Once
	writes    atomic.Int64 // TLS writes done, to show batching
	stanzas   atomic.Int64 // stanzas read after negotiation
}

// errSASL is a refused login.
var errSASL = errors.New("SASL authentication refused")

// Read buffer sizes: large for connections that carry the load, small for
// the sessions of idle and login, which read little and of which one
// ccsbench holds many.
const (
	bigReadBuf   = 64 << 10
	smallReadBuf = 4 << 10
)

// dialXMPP connects to addr with direct TLS, authenticates with SASL PLAIN
// and binds a resource, reading through a buffer of readBuf bytes. The
// connection reads nothing until start.
func dialXMPP(ctx context.Context, d *net.Dialer, addr string, tlsConf *tls.Config, user, pass, domain, name string, readBuf int) (*xconn, error) {
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	conf := tlsConf.Clone()
	if conf.ServerName == "" {
		conf.ServerName, _, _ = net.SplitHostPort(addr)
	}
	conn := tls.Client(raw, conf)
	deadline := time.Now().Add(20 * time.Second)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	_ = conn.SetDeadline(deadline)
	c := &xconn{
		name:  name,
		conn:  conn,
		dec:   xml.NewDecoder(bufio.NewReaderSize(conn, readBuf)),
		kick:  make(chan struct{}, 1),
		stop:  make(chan struct{}),
		wdone: make(chan struct{}),
		rdone: make(chan struct{}),
	}
	fail := func(err error) (*xconn, error) {
		conn.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if err := conn.HandshakeContext(ctx); err != nil {
		return fail(err)
	}
	header := `<?xml version='1.0'?><stream:stream to="` + xmlAttr(domain) + `" version="1.0" xmlns="jabber:client" xmlns:stream="http://etherx.jabber.org/streams">`
	if err := c.openStream(header); err != nil {
		return fail(err)
	}
	auth := base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + pass))
	if err := c.writeNow(`<auth xmlns="urn:ietf:params:xml:ns:xmpp-sasl" mechanism="PLAIN">` + auth + `</auth>`); err != nil {
		return fail(err)
	}
	var st stanza
	if err := c.readElem(&st); err != nil {
		return fail(fmt.Errorf("SASL answer: %w", err))
	}
	if st.name != "success" {
		if st.name == "failure" {
			return fail(fmt.Errorf("%w (%s)", errSASL, st.child))
		}
		return fail(fmt.Errorf("SASL answer %s", &st))
	}
	if err := c.openStream(header); err != nil {
		return fail(err)
	}
	if err := c.writeNow(`<iq type="set" id="bind1"><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"/></iq>`); err != nil {
		return fail(err)
	}
	if err := c.readElem(&st); err != nil {
		return fail(fmt.Errorf("bind answer: %w", err))
	}
	if st.name != "iq" || st.typ != "result" || strings.TrimSpace(string(st.text)) == "" {
		return fail(fmt.Errorf("bind answer %s", &st))
	}
	c.jid = strings.TrimSpace(string(st.text))
	_ = conn.SetDeadline(time.Time{})
	return c, nil
}

// openStream writes a stream header, then reads the server's header and
// its features.
func (c *xconn) openStream(header string) error {
	if err := c.writeNow(header); err != nil {
		return err
	}
	for {
		tok, err := c.dec.Token()
		if err != nil {
			return fmt.Errorf("stream header: %w", err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			if se.Name.Local != "stream" {
				return fmt.Errorf("want a stream header, got <%s>", se.Name.Local)
			}
			break
		}
	}
	var st stanza
	if err := c.readElem(&st); err != nil {
		return fmt.Errorf("stream features: %w", err)
	}
	if st.name != "features" {
		return fmt.Errorf("want stream features, got %s", &st)
	}
	return nil
}

// writeNow writes s directly; only during negotiation, before the writer
// goroutine runs.
func (c *xconn) writeNow(s string) error {
	_, err := io.WriteString(c.conn, s)
	return err
}

// readElem reads the next top-level element of the stream into st. It
// returns io.EOF at the end of the stream.
func (c *xconn) readElem(st *stanza) error {
	st.reset()
	depth := 0
	for {
		tok, err := c.dec.Token()
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			switch {
			case depth == 1:
				st.name, st.space = t.Name.Local, t.Name.Space
				for _, a := range t.Attr {
					if a.Name.Space != "" {
						continue
					}
					switch a.Name.Local {
					case "type":
						st.typ = a.Value
					case "id":
						st.id = a.Value
					}
				}
			case depth == 2:
				if st.child == "" {
					st.child = t.Name.Local
				}
				if t.Name.Local == "gcm" && t.Name.Space == gcmNS {
					st.hasGCM, st.inGCM = true, true
				}
			}
		case xml.EndElement:
			if depth == 0 {
				return io.EOF // </stream:stream>
			}
			depth--
			if depth == 1 {
				st.inGCM = false
			}
			if depth == 0 {
				return nil
			}
		case xml.CharData:
			switch {
			case depth < 2:
			case st.inGCM:
				st.payload = append(st.payload, t...)
			default:
				st.text = append(st.text, t...)
			}
		}
	}
}

// start runs the reader and the writer. handle is called for every
// stanza, in the reader goroutine; ended is called once when the stream
// ends, with nil if close was called first.
func (c *xconn) start(handle func(*stanza), ended func(error)) {
	go c.writeLoop()
	go func() {
		defer close(c.rdone)
		var st stanza
		for {
			err := c.readElem(&st)
			if err == nil {
				c.stanzas.Add(1)
				handle(&st)
				continue
			}
			if c.closing.Load() {
				ended(nil)
			} else {
				ended(fmt.Errorf("%s: stream ended: %w", c.name, err))
			}
			return
		}
	}()
}

// send queues b for the writer; it never blocks on the network.
func (c *xconn) send(b []byte) {
	c.mu.Lock()
	c.out = append(c.out, b...)
	c.mu.Unlock()
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// writeLoop writes everything queued since its last write in one TLS
// write, until stop.
func (c *xconn) writeLoop() {
	defer close(c.wdone)
	for {
		select {
		case <-c.kick:
			if c.flush() != nil {
				return
			}
		case <-c.stop:
			_ = c.flush()
			return
		}
	}
}

func (c *xconn) flush() error {
	c.mu.Lock()
	b := c.out
	c.out, c.spare = c.spare[:0], nil
	c.mu.Unlock()
	var err error
	if len(b) > 0 {
		_ = c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
		_, err = c.conn.Write(b)
		c.writes.Add(1)
	}
	c.mu.Lock()
	c.spare = b[:0]
	c.mu.Unlock()
	if err != nil {
		// The reader then ends too and reports the connection.
		_ = c.conn.Close()
	}
	return err
}

// close ends the stream politely: queued stanzas are written, then
// </stream:stream>; the server gets up to wait to close its side.
func (c *xconn) close(wait time.Duration) {
	c.closeOnce.Do(func() {
		c.closing.Store(true)
		c.send([]byte(`</stream:stream>`))
		close(c.stop)
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-c.wdone:
			select {
			case <-c.rdone:
			case <-t.C:
			}
		case <-t.C:
		}
		_ = c.conn.Close()
		<-c.rdone
	})
}

// appendGCM appends a message stanza carrying the JSON text js.
func appendGCM(b []byte, id string, js []byte) []byte {
	b = append(b, `<message id="`...)
	b = appendEscaped(b, id, `<>&"'`+"\r")
	b = append(b, `"><gcm xmlns="google:mobile:data">`...)
	b = appendEscaped(b, js, "<>&\r")
	return append(b, `</gcm></message>`...)
}

// appendEscaped appends s escaped for XML: the characters of special (a
// subset of <>&"' and CR) are written as references. Text needs only <>&
// (and CR, which XML would turn into LF); attribute values need quotes too.
func appendEscaped[T string | []byte](b []byte, s T, special string) []byte {
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if strings.IndexByte(special, ch) < 0 {
			b = append(b, ch)
			continue
		}
		switch ch {
		case '<':
			b = append(b, "&lt;"...)
		case '>':
			b = append(b, "&gt;"...)
		case '&':
			b = append(b, "&amp;"...)
		case '"':
			b = append(b, "&quot;"...)
		case '\'':
			b = append(b, "&apos;"...)
		case '\r':
			b = append(b, "&#xD;"...)
		default:
			b = append(b, ch)
		}
	}
	return b
}

func xmlAttr(s string) string { return string(appendEscaped(nil, s, `<>&"'`+"\r")) }
