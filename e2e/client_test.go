package e2e

import (
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"testing"
	"time"
)

// client is a plain XMPP client written against the RFC, independent of
// the server's code: direct TLS, SASL PLAIN, bind, then stanzas. It keeps
// raw attributes so tests can check exactly what ccsd wrote.
//
// Devices come from package device (device.Client: checkin, register,
// Run with a Handler, Send) wherever a test needs only "a device that
// receives and acks" or "a device that sends upstream and gets its ack".
// This private client stays for what that package, by design, hides or
// refuses to do:
//   - every app-server session (package device is the device side only);
//   - exact framing: XMPP attributes (type="normal", no type on an ack,
//     from/to), stanza and stream errors, what a stanza looks like on the
//     wire (addressing, fidelity, payload tests);
//   - exact delivery counts: the package drops a message delivered again
//     by its message_id and acks it unseen, so a test proving ccsd
//     delivers once (downMarker, TestDedupOfRetries, the online crash
//     test's duplicate count) must see every copy;
//   - misbehaving on purpose: not acking, nacking, acking late, filling the
//     window, oversize stanzas, wrong credentials, a second session of one
//     identity, dropping the connection at a chosen moment (the package
//     acks once its handler returns and reconnects by itself);
//   - timing a test depends on: the next upstream message written in the
//     same goroutine the moment an ack is read (TestDeviceUpstreamFullWindow),
//     or the ack written only once the test has looked (store write counts).
type client struct {
	t    *testing.T
	conn *tls.Conn
	dec  *xml.Decoder
	wmu  sync.Mutex
	in   chan *elem
	JID  string
	n    int

	closeOnce sync.Once
}

// elem is one top-level element read from the stream.
type elem struct {
	XMLName xml.Name
	Attrs   []xml.Attr `xml:",any,attr"`
	Inner   []byte     `xml:",innerxml"`
}

func (e *elem) attr(name string) (string, bool) {
	for _, a := range e.Attrs {
		if a.Name.Local == name && a.Name.Space == "" {
			return a.Value, true
		}
	}
	return "", false
}

// gcm returns the text of the google:mobile:data gcm child, if any.
func (e *elem) gcm() (string, bool) {
	d := xml.NewDecoder(bytes.NewReader(e.Inner))
	in, found := false, false
	var text []byte
	for {
		tok, err := d.Token()
		if err != nil {
			return string(text), found
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if tok.Name.Space == "google:mobile:data" && tok.Name.Local == "gcm" {
				in, found = true, true
			}
		case xml.EndElement:
			if tok.Name.Space == "google:mobile:data" && tok.Name.Local == "gcm" {
				in = false
			}
		case xml.CharData:
			if in {
				text = append(text, tok...)
			}
		}
	}
}

func (e *elem) String() string {
	return fmt.Sprintf("<%s %v>%s", e.XMLName.Local, e.Attrs, e.Inner)
}

var errNotAuthorized = errors.New("SASL failure: not-authorized")

func dial(t *testing.T, addr string, cfg *tls.Config, user, pass, domain string) (*client, error) {
	conn, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	c := &client{t: t, conn: conn, dec: xml.NewDecoder(conn), in: make(chan *elem, 1024)}
	fail := func(err error) (*client, error) {
		conn.Close()
		return nil, err
	}
	header := `<?xml version='1.0'?><stream:stream to="` + domain + `" version="1.0" xmlns="jabber:client" xmlns:stream="http://etherx.jabber.org/streams">`
	if err := c.openStream(header); err != nil {
		return fail(err)
	}
	auth := base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + pass))
	c.write(`<auth xmlns="urn:ietf:params:xml:ns:xmpp-sasl" mechanism="PLAIN">` + auth + `</auth>`)
	res, err := c.read()
	if err != nil {
		return fail(err)
	}
	if res.XMLName.Local != "success" {
		if bytes.Contains(res.Inner, []byte("not-authorized")) {
			return fail(errNotAuthorized)
		}
		return fail(fmt.Errorf("SASL answer %s", res))
	}
	if err := c.openStream(header); err != nil {
		return fail(err)
	}
	c.write(`<iq type="set" id="bind1"><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"/></iq>`)
	res, err = c.read()
	if err != nil {
		return fail(err)
	}
	var bound struct {
		JID string `xml:"bind>jid"`
	}
	if typ, _ := res.attr("type"); typ != "result" || xml.Unmarshal(append(append([]byte("<iq>"), res.Inner...), "</iq>"...), &bound) != nil || bound.JID == "" {
		return fail(fmt.Errorf("bind answer %s", res))
	}
	c.JID = bound.JID
	_ = conn.SetDeadline(time.Time{})
	go c.readLoop()
	// Cleanups run last-in first-out: clients end their streams before the
	// server is stopped, as real peers would, so shutdown does not wait.
	t.Cleanup(c.close)
	return c, nil
}

// openStream writes a stream header and reads the server's header and
// features.
func (c *client) openStream(header string) error {
	c.write(header)
	for {
		tok, err := c.dec.Token()
		if err != nil {
			return fmt.Errorf("stream header: %w", err)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "stream" {
			break
		}
	}
	f, err := c.read()
	if err != nil {
		return err
	}
	if f.XMLName.Local != "features" {
		return fmt.Errorf("want features, got %s", f)
	}
	return nil
}

// read decodes the next top-level element.
func (c *client) read() (*elem, error) {
	for {
		tok, err := c.dec.Token()
		if err != nil {
			return nil, err
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			e := new(elem)
			if err := c.dec.DecodeElement(e, &tok); err != nil {
				return nil, err
			}
			return e, nil
		case xml.EndElement:
			return nil, io.EOF // </stream:stream>
		}
	}
}

func (c *client) readLoop() {
	defer close(c.in)
	for {
		e, err := c.read()
		if err != nil {
			return
		}
		c.in <- e
	}
}

func (c *client) write(s string) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c.conn, s); err != nil {
		c.t.Logf("client write: %v", err)
	}
}

// send writes one CCS message stanza carrying payload.
func (c *client) send(payload string) {
	c.n++
	var b bytes.Buffer
	_ = xml.EscapeText(&b, []byte(payload))
	c.write(`<message id="c` + strconv.Itoa(c.n) + `"><gcm xmlns="google:mobile:data">` + b.String() + `</gcm></message>`)
}

// sendJSON marshals v and sends it.
func (c *client) sendJSON(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		c.t.Fatal(err)
	}
	c.send(string(b))
}

// next returns the next element, or fails the test after d.
func (c *client) next(d time.Duration) *elem {
	c.t.Helper()
	select {
	case e, ok := <-c.in:
		if !ok {
			c.t.Fatalf("stream closed while waiting")
		}
		return e
	case <-time.After(d):
		c.t.Fatalf("nothing received in %v", d)
		return nil
	}
}

// msg is a received CCS JSON stanza with its XMPP type attribute.
type msg struct {
	typ     string
	hasType bool
	json    map[string]any
	raw     string
}

func (m msg) str(k string) string { s, _ := m.json[k].(string); return s }

// expect returns the next CCS message (skipping nothing: any other element
// fails the test).
func (c *client) expect(d time.Duration) msg {
	c.t.Helper()
	e := c.next(d)
	text, ok := e.gcm()
	if e.XMLName.Local != "message" || !ok {
		c.t.Fatalf("want a gcm message, got %s", e)
	}
	m := msg{raw: text}
	m.typ, m.hasType = e.attr("type")
	if err := json.Unmarshal([]byte(text), &m.json); err != nil {
		c.t.Fatalf("gcm payload is not JSON: %q", text)
	}
	return m
}

// expectNone checks that nothing arrives for d.
func (c *client) expectNone(d time.Duration) {
	c.t.Helper()
	select {
	case e, ok := <-c.in:
		if ok {
			c.t.Fatalf("unexpected %s", e)
		}
	case <-time.After(d):
	}
}

// closed waits for the server to end the stream and returns the last
// element it sent (a stream error, say), if any.
func (c *client) closed(d time.Duration) *elem {
	c.t.Helper()
	var last *elem
	timeout := time.After(d)
	for {
		select {
		case e, ok := <-c.in:
			if !ok {
				return last
			}
			last = e
		case <-timeout:
			c.t.Fatalf("stream not closed after %v", d)
		}
	}
}

func (c *client) close() {
	c.closeOnce.Do(func() {
		c.wmu.Lock()
		_ = c.conn.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = io.WriteString(c.conn, `</stream:stream>`)
		c.wmu.Unlock()
		_ = c.conn.Close()
	})
}

// ack acks a downstream message, as a device does.
func (c *client) ack(messageID string) {
	c.sendJSON(map[string]string{"message_type": "ack", "message_id": messageID})
}

// ackUpstream acks an upstream message or receipt, as an app server does.
func (c *client) ackUpstream(from, messageID string) {
	c.sendJSON(map[string]string{"to": from, "message_id": messageID, "message_type": "ack"})
}
