package xmpp

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ccsd/ccsd/internal/limit"
)

// Test credentials: user "123" (sender) and "dev1" (device) with password
// "secret"; the identity returned is the user name.
const testPassword = "secret"

type testAuth struct{}

func (testAuth) Authenticate(_ context.Context, user, password string) (string, error) {
	if (user == "123" || user == "456" || user == "dev1") && password == testPassword {
		return user, nil
	}
	return "", errors.New("bad credentials")
}

// received is one Stream.Message call.
type received struct {
	conn    *Conn
	id      string
	payload []byte
}

// testHandler records connections and messages; with echo it sends every
// payload back with Send(payload, echoType).
type testHandler struct {
	echo     bool
	echoType string
	conns    chan *Conn
	msgs     chan received
	closed   chan *Conn
}

func newTestHandler(echo bool) *testHandler {
	return &testHandler{echo: echo, conns: make(chan *Conn, 64), msgs: make(chan received, 4096), closed: make(chan *Conn, 64)}
}

type testStream struct {
	h *testHandler
	c *Conn
	n int
	o sync.Once
}

func (h *testHandler) Open(c *Conn) (Stream, error) {
	h.conns <- c
	return &testStream{h: h, c: c}, nil
}

func (s *testStream) Message(id string, payload []byte) {
	if s.h.echo {
		_ = s.c.Send(payload, s.h.echoType)
		return
	}
	s.h.msgs <- received{conn: s.c, id: id, payload: payload}
}

func (s *testStream) Closed() {
	s.n++
	if s.n != 1 {
		panic("Closed called twice")
	}
	s.h.closed <- s.c
}

// testEnv is a running server on 127.0.0.1 with a self-signed certificate.
type testEnv struct {
	t       *testing.T
	srv     *Server
	addr    string
	h       *testHandler
	roots   *x509.CertPool
	logs    *syncBuffer
	serveCh chan error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testCert makes a certificate in t.TempDir() with LoadOrCreateCertificate.
func testCert(t testing.TB) tls.Certificate {
	t.Helper()
	dir := t.TempDir()
	cert, created, err := LoadOrCreateCertificate(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"),
		[]string{"gcm.googleapis.com", "fcm.googleapis.com", "localhost", "127.0.0.1"})
	if err != nil || !created {
		t.Fatalf("LoadOrCreateCertificate: created=%v err=%v", created, err)
	}
	return cert
}

func startServer(t *testing.T, h *testHandler, mod func(*Config)) *testEnv {
	t.Helper()
	cert := testCert(t)
	logs := &syncBuffer{}
	cfg := Config{
		Domain:  "gcm.googleapis.com",
		Aliases: []string{"fcm.googleapis.com"},
		TLS:     &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		Auth:    testAuth{},
		Handler: h,
		Logger:  zerolog.New(logs),
		// Failed-login budgets off unless a test sets its own: many tests
		// fail logins from 127.0.0.1 on purpose.
		Logins: limit.NewLogins(-1, -1),
	}
	if mod != nil {
		mod(&cfg)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(cfg)
	env := &testEnv{t: t, srv: srv, addr: l.Addr().String(), h: h, logs: logs, serveCh: make(chan error, 1)}
	env.roots = x509.NewCertPool()
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	env.roots.AddCert(leaf)
	go func() { env.serveCh <- srv.Serve(l) }()
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		select {
		case err := <-env.serveCh:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("Serve did not return")
		}
		if t.Failed() {
			t.Logf("server logs:\n%s", logs.String())
		}
	})
	return env
}

func (e *testEnv) clientTLS() *tls.Config {
	return &tls.Config{RootCAs: e.roots, ServerName: "gcm.googleapis.com", MinVersion: tls.VersionTLS12}
}

func (e *testEnv) dialTLS() *tls.Conn {
	e.t.Helper()
	c, err := tls.Dial("tcp", e.addr, e.clientTLS())
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	return c
}

// rawClient speaks XMPP by hand so tests can see and send exact bytes.
type rawClient struct {
	t    testing.TB
	conn *tls.Conn
	rec  *recorder
	d    *xml.Decoder
	jid  string
}

// recorder keeps every byte read so tests can check raw bytes.
type recorder struct {
	r  io.Reader
	mu sync.Mutex
	b  bytes.Buffer
}

func (r *recorder) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.mu.Lock()
	r.b.Write(p[:n])
	r.mu.Unlock()
	return n, err
}

func (r *recorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.b.String()
}

func (e *testEnv) raw() *rawClient {
	c := e.dialTLS()
	rec := &recorder{r: c}
	return &rawClient{t: e.t, conn: c, rec: rec, d: xml.NewDecoder(rec)}
}

func (c *rawClient) send(s string) {
	c.t.Helper()
	_ = c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c.conn, s); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// open sends a stream header to `to` and reads the server's header.
func (c *rawClient) open(to string) {
	c.t.Helper()
	c.send(fmt.Sprintf(`<?xml version='1.0'?><stream:stream to='%s' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`, to))
	start := c.nextStart()
	if start.Name.Local != "stream" || start.Name.Space != nsStream {
		c.t.Fatalf("want stream header, got %v", start.Name)
	}
}

// token reads the next token with a deadline, skipping whitespace.
func (c *rawClient) token() (xml.Token, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		tok, err := c.d.Token()
		if err != nil {
			return nil, err
		}
		if cd, ok := tok.(xml.CharData); ok && len(bytes.TrimSpace(cd)) == 0 {
			continue
		}
		if _, ok := tok.(xml.ProcInst); ok {
			continue
		}
		return xml.CopyToken(tok), nil
	}
}

func (c *rawClient) nextStart() xml.StartElement {
	c.t.Helper()
	tok, err := c.token()
	if err != nil {
		c.t.Fatalf("read: %v (raw so far: %q)", err, c.rec.String())
	}
	start, ok := tok.(xml.StartElement)
	if !ok {
		c.t.Fatalf("want a start element, got %T %v (raw so far: %q)", tok, tok, c.rec.String())
	}
	return start
}

// elem is a generic decoded element.
type elem struct {
	XMLName xml.Name
	Attrs   []xml.Attr `xml:",any,attr"`
	Inner   []byte     `xml:",innerxml"`
	Kids    []elem     `xml:",any"`
	Text    string     `xml:",chardata"`
}

func (e elem) attr(name string) (string, bool) {
	for _, a := range e.Attrs {
		if a.Name.Local == name && a.Name.Space == "" {
			return a.Value, true
		}
	}
	return "", false
}

func (e elem) kid(space, local string) (elem, bool) {
	for _, k := range e.Kids {
		if k.XMLName.Local == local && (space == "*" || k.XMLName.Space == space) {
			return k, true
		}
	}
	return elem{}, false
}

// next reads the next top-level element.
func (c *rawClient) next() elem {
	c.t.Helper()
	start := c.nextStart()
	var e elem
	if err := c.d.DecodeElement(&e, &start); err != nil {
		c.t.Fatalf("decode: %v", err)
	}
	return e
}

// expectClosed reads until the server's </stream:stream> and EOF.
func (c *rawClient) expectEnd() {
	c.t.Helper()
	for {
		tok, err := c.token()
		if err != nil {
			if errors.Is(err, io.EOF) || strings.Contains(err.Error(), "unexpected EOF") {
				c.t.Fatalf("connection closed without </stream:stream>: %v", err)
			}
			c.t.Fatalf("read: %v", err)
		}
		if end, ok := tok.(xml.EndElement); ok && end.Name.Local == "stream" {
			break
		}
		if start, ok := tok.(xml.StartElement); ok {
			c.t.Fatalf("want </stream:stream>, got <%s>", start.Name.Local)
		}
	}
	_, _ = c.conn.Write([]byte(`</stream:stream>`)) // may fail: the server may be gone
	_ = c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.conn.Read(make([]byte, 1)); err == nil {
		c.t.Fatalf("data after </stream:stream>")
	}
	c.conn.Close()
}

// expectStreamError reads a stream error with the given condition, then the end of the stream.
func (c *rawClient) expectStreamError(cond string) {
	c.t.Helper()
	e := c.next()
	if e.XMLName.Local != "error" || e.XMLName.Space != nsStream {
		c.t.Fatalf("want stream error %s, got %v %s", cond, e.XMLName, e.Inner)
	}
	if _, ok := e.kid(nsStreams, cond); !ok {
		c.t.Fatalf("want stream error %s, got %s", cond, e.Inner)
	}
	c.expectEnd()
}

// features reads <stream:features/>.
func (c *rawClient) features() elem {
	c.t.Helper()
	e := c.next()
	if e.XMLName.Local != "features" {
		c.t.Fatalf("want features, got %v", e.XMLName)
	}
	return e
}

func plainBlob(authzid, authcid, password string) string {
	return base64.StdEncoding.EncodeToString([]byte(authzid + "\x00" + authcid + "\x00" + password))
}

// login runs the whole negotiation with the given authcid and binds.
func (c *rawClient) login(to, authcid string) {
	c.t.Helper()
	c.open(to)
	f := c.features()
	if _, ok := f.kid(nsSASL, "mechanisms"); !ok {
		c.t.Fatalf("no SASL mechanisms in %s", f.Inner)
	}
	if _, ok := f.kid("*", "starttls"); ok {
		c.t.Fatalf("STARTTLS offered: %s", f.Inner)
	}
	c.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>` + plainBlob("", authcid, testPassword) + `</auth>`)
	if e := c.next(); e.XMLName.Local != "success" {
		c.t.Fatalf("want success, got %v %s", e.XMLName, e.Inner)
	}
	c.d = xml.NewDecoder(c.rec)
	c.open(to)
	f = c.features()
	if _, ok := f.kid(nsBind, "bind"); !ok {
		c.t.Fatalf("no bind in %s", f.Inner)
	}
	if _, ok := f.kid(nsSession, "session"); !ok {
		c.t.Fatalf("no session in %s", f.Inner)
	}
	c.send(`<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>`)
	e := c.next()
	if typ, _ := e.attr("type"); typ != "result" {
		c.t.Fatalf("bind: %s", e.Inner)
	}
	b, _ := e.kid(nsBind, "bind")
	j, _ := b.kid(nsBind, "jid")
	c.jid = j.Text
}

// readStanza reads one whole stanza the way the connection does
// (startStanza, then readStanzaBody), for the parser's fuzz tests.
func readStanza(r xml.TokenReader, start xml.StartElement) (inStanza, error) {
	return readStanzaBody(r, startStanza(start))
}

// renderMessage returns a complete <message/> stanza as the server writes
// it (appendMessage), for tests that feed the reader what a peer sends.
func renderMessage(id, typ string, payload []byte) []byte {
	b := make([]byte, 0, len(payload)+len(id)+64+len(payload)/16)
	b = appendMessage(b, id, typ, "", payload)
	return append(b, `</message>`...)
}
