package device

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

const (
	nsGCM     = "google:mobile:data"
	nsStreams = "urn:ietf:params:xml:ns:xmpp-streams"
)

// element is one top-level element read from the stream: just what a
// device acts on.
type element struct {
	name, space string // local name and namespace: message, iq, error (stream), ...
	typ, id     string // type and id attributes
	child       string // local name of the first child element
	hasGCM      bool
	payload     []byte // text of the google:mobile:data gcm child
	text        []byte // the other character data below the element
}

// conn is one XMPP connection to ccsd's device port, logged in and bound.
// One goroutine reads (readElement); writes are serialised by wmu, each
// with its own deadline.
type conn struct {
	tls  *tls.Conn
	dec  *xml.Decoder
	jid  string
	wmu  sync.Mutex
	wto  time.Duration
	read atomic.Int64 // unix nanoseconds of the last element read
}

// dialXMPP connects with direct TLS, logs in with SASL PLAIN and binds
// (docs/device-protocol.md, "Session").
func dialXMPP(ctx context.Context, cfg *Config, addr string, s State) (*conn, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	d := tls.Dialer{NetDialer: &net.Dialer{}, Config: cfg.TLS}
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("device: connect %s: %w", addr, err)
	}
	tc := raw.(*tls.Conn)
	c := &conn{tls: tc, dec: xml.NewDecoder(bufio.NewReaderSize(tc, 16<<10)), wto: cfg.WriteTimeout}
	dl, _ := ctx.Deadline()
	_ = tc.SetDeadline(dl)
	if err := c.login(cfg.Domain, s); err != nil {
		tc.Close()
		return nil, err
	}
	_ = tc.SetDeadline(time.Time{})
	c.read.Store(time.Now().UnixNano())
	return c, nil
}

// login runs the negotiation: stream, SASL PLAIN, stream again, bind.
func (c *conn) login(domain string, s State) error {
	header := `<?xml version='1.0'?><stream:stream to="` + escape(domain, true) +
		`" version="1.0" xmlns="jabber:client" xmlns:stream="http://etherx.jabber.org/streams">`
	if err := c.openStream(header); err != nil {
		return err
	}
	auth := base64.StdEncoding.EncodeToString([]byte("\x00" + s.AndroidID + "\x00" + s.SecurityToken))
	if err := c.write(`<auth xmlns="urn:ietf:params:xml:ns:xmpp-sasl" mechanism="PLAIN">` + auth + `</auth>`); err != nil {
		return err
	}
	var e element
	if err := c.readElement(&e); err != nil {
		return fmt.Errorf("device: SASL answer: %w", err)
	}
	switch {
	case e.name == "failure" && e.child == "not-authorized":
		return ErrUnauthorized
	case e.name == "failure":
		// temporary-auth-failure: too many failed logins; retried later.
		return fmt.Errorf("device: login refused: %s %s", e.child, strings.TrimSpace(string(e.text)))
	case e.name != "success":
		return fmt.Errorf("device: unexpected SASL answer <%s>", e.name)
	}
	if err := c.openStream(header); err != nil {
		return err
	}
	if err := c.write(`<iq type="set" id="bind-1"><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"/></iq>`); err != nil {
		return err
	}
	if err := c.readElement(&e); err != nil {
		return fmt.Errorf("device: bind answer: %w", err)
	}
	if e.name != "iq" || e.typ != "result" {
		return fmt.Errorf("device: bind refused: <%s type=%q>%s", e.name, e.typ, e.child)
	}
	c.jid = strings.TrimSpace(string(e.text))
	return nil
}

// openStream writes a stream header, then reads the server's header and
// its features.
func (c *conn) openStream(header string) error {
	if err := c.write(header); err != nil {
		return err
	}
	for {
		tok, err := c.dec.Token()
		if err != nil {
			return fmt.Errorf("device: stream header: %w", err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			if se.Name.Local != "stream" {
				return fmt.Errorf("device: want a stream header, got <%s>", se.Name.Local)
			}
			break
		}
	}
	var e element
	if err := c.readElement(&e); err != nil {
		return fmt.Errorf("device: stream features: %w", err)
	}
	if e.name == "error" {
		return &StreamError{Condition: e.child}
	}
	if e.name != "features" {
		return fmt.Errorf("device: want stream features, got <%s>", e.name)
	}
	return nil
}

// readElement reads the next top-level element into e; io.EOF is the end
// of the stream.
func (c *conn) readElement(e *element) error {
	*e = element{payload: e.payload[:0], text: e.text[:0]}
	depth, inGCM := 0, false
	for {
		tok, err := c.dec.Token()
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			switch depth {
			case 1:
				e.name, e.space = t.Name.Local, t.Name.Space
				for _, a := range t.Attr {
					switch {
					case a.Name.Space != "":
					case a.Name.Local == "type":
						e.typ = a.Value
					case a.Name.Local == "id":
						e.id = a.Value
					}
				}
			case 2:
				if e.child == "" {
					e.child = t.Name.Local
				}
				if t.Name.Local == "gcm" && t.Name.Space == nsGCM {
					e.hasGCM, inGCM = true, true
				}
			}
		case xml.EndElement:
			if depth == 0 {
				return io.EOF // </stream:stream>
			}
			depth--
			if depth == 1 {
				inGCM = false
			}
			if depth == 0 {
				c.read.Store(time.Now().UnixNano())
				return nil
			}
		case xml.CharData:
			switch {
			case depth < 2:
			case inGCM:
				e.payload = append(e.payload, t...)
			default:
				e.text = append(e.text, t...)
			}
		}
	}
}

// write writes s with a deadline; a failed write closes the connection,
// which ends the reader too.
func (c *conn) write(s string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.tls.SetWriteDeadline(time.Now().Add(c.wto))
	if _, err := io.WriteString(c.tls, s); err != nil {
		c.tls.Close()
		return fmt.Errorf("device: write: %w", err)
	}
	return nil
}

// sendGCM writes a message stanza carrying the JSON payload.
func (c *conn) sendGCM(id string, payload []byte) error {
	open := `<message>`
	if id != "" {
		open = `<message id="` + escape(id, true) + `">`
	}
	return c.write(open + `<gcm xmlns="google:mobile:data">` + escape(string(payload), false) + `</gcm></message>`)
}

// close ends the stream politely and waits up to wait for the server to
// close its side (the reader then sees the end), then closes.
func (c *conn) close(wait time.Duration) {
	_ = c.write(`</stream:stream>`)
	_ = c.tls.SetReadDeadline(time.Now().Add(wait))
	go func() {
		time.Sleep(wait)
		c.tls.Close()
	}()
}

// lastRead is when the last element arrived.
func (c *conn) lastRead() time.Time { return time.Unix(0, c.read.Load()) }

// escape escapes s for XML text, or for a double-quoted attribute value.
// CR is escaped too, which XML would otherwise read as LF.
func escape(s string, attr bool) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch ch := s[i]; {
		case ch == '<':
			b.WriteString("&lt;")
		case ch == '>':
			b.WriteString("&gt;")
		case ch == '&':
			b.WriteString("&amp;")
		case ch == '\r':
			b.WriteString("&#xD;")
		case ch == '"' && attr:
			b.WriteString("&quot;")
		default:
			b.WriteByte(ch)
		}
	}
	return b.String()
}

// isClosed reports whether err is the usual end of a connection we closed.
func isClosed(err error) bool {
	return errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF)
}
