package xmpp

import (
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// flood writes chunk to c over and over, in the background, until limit
// bytes are written or a write fails (the server closed the connection). It
// returns a channel closed when the writer stops.
func flood(c *rawClient, first, chunk string, limit int) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = c.conn.SetWriteDeadline(time.Now().Add(20 * time.Second))
		if _, err := c.conn.Write([]byte(first)); err != nil {
			return
		}
		buf := []byte(strings.Repeat(chunk, max(1, 16<<10/len(chunk))))
		for n := len(first); n < limit; n += len(buf) {
			if _, err := c.conn.Write(buf); err != nil {
				return
			}
		}
	}()
	return done
}

// waitDone waits for the connection to be fully closed.
func waitDone(t *testing.T, conn *Conn) {
	t.Helper()
	select {
	case <-conn.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("connection not closed")
	}
}

// checkReadBound fails unless what the reader held stayed under bound bytes
// and MaxDepth levels.
func checkReadBound(t *testing.T, conn *Conn, bound int) {
	t.Helper()
	u := conn.Usage()
	t.Logf("usage %+v", u)
	if u.PeakReadBytes > bound {
		t.Errorf("the reader held %d bytes, bound %d", u.PeakReadBytes, bound)
	}
	if u.PeakDepth > MaxDepth {
		t.Errorf("the reader went %d levels deep, bound %d", u.PeakDepth, MaxDepth)
	}
}

// TestNestedStreamTags: after login, <a:stream xmlns:a="urn:x"> followed by
// <a:stream> without end used to make the server hold everything (each tag
// looked like a stream restart to the byte scanner, while the decoder nested
// them). It is now refused at its start tag with unsupported-stanza-type,
// and the reader never holds more than one stanza plus read-ahead.
func TestNestedStreamTags(t *testing.T) {
	env, c, conn := loggedIn(t, false, nil)
	stopped := flood(c, `<a:stream xmlns:a="urn:x">`, `<a:stream>`, 16<<20)
	c.expectStreamError("unsupported-stanza-type")
	waitDone(t, conn)
	<-stopped
	checkReadBound(t, conn, DefaultMaxStanzaSize+DecoderReadAhead)
	<-env.h.closed
}

// TestStreamRestartAfterLogin: a real stream header after negotiation is not
// a restart either; the scanner nests it like any element, so the restart
// flood stays bounded too.
func TestStreamRestartAfterLogin(t *testing.T) {
	_, c, conn := loggedIn(t, false, nil)
	header := `<stream:stream to='gcm.googleapis.com' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`
	stopped := flood(c, header, header, 4<<20)
	c.expectStreamError("policy-violation")
	waitDone(t, conn)
	<-stopped
	checkReadBound(t, conn, DefaultMaxStanzaSize+DecoderReadAhead)
}

// nest returns n nested <a> elements around inner.
func nest(n int, inner string) string {
	return strings.Repeat("<a>", n) + inner + strings.Repeat("</a>", n)
}

// TestDeepNesting: elements nested MaxDepth levels below the stream are
// read (a message is level 1, its gcm child level 2); one level more ends
// the stream with policy-violation before the decoder stacks it, and an
// endless nesting inside a <message> is cut there.
func TestDeepNesting(t *testing.T) {
	env, c, conn := loggedIn(t, false, nil)
	c.send(`<message id="ok"><gcm xmlns="google:mobile:data">p` + nest(MaxDepth-2, "x") + `</gcm></message>`)
	if m := recv(t, env.h); m.id != "ok" || string(m.payload) != "p" {
		t.Fatalf("got %q %q", m.id, m.payload)
	}
	if u := conn.Usage(); u.PeakDepth != MaxDepth {
		t.Fatalf("PeakDepth %d after a message %d levels deep", u.PeakDepth, MaxDepth)
	}
	stopped := flood(c, `<message id="deep"><gcm xmlns="google:mobile:data">`, `<a>`, 1<<20)
	c.expectStreamError("policy-violation")
	waitDone(t, conn)
	<-stopped
	checkReadBound(t, conn, DefaultMaxStanzaSize+DecoderReadAhead)
	select {
	case m := <-env.h.msgs:
		t.Fatalf("delivered %q", m.id)
	default:
	}
}

// TestDeepSelfClosing: a self-closing element past MaxDepth counts too.
func TestDeepSelfClosing(t *testing.T) {
	_, c, conn := loggedIn(t, false, nil)
	c.send(`<message id="d">` + nest(MaxDepth-1, "<b/>") + `</message>`)
	c.expectStreamError("policy-violation")
	waitDone(t, conn)
}

// TestNonStanzaLoop: a top-level element that is not a stanza ends the
// stream with unsupported-stanza-type as soon as its start tag is read:
// the server does not read (and buffer) the element first.
func TestNonStanzaLoop(t *testing.T) {
	for _, start := range []string{`<foo xmlns="jabber:client">`, `<x:message xmlns:x="urn:x">`, `<junk>`} {
		t.Run(start, func(t *testing.T) {
			_, c, conn := loggedIn(t, false, nil)
			body := start + strings.Repeat("y", 48<<10) + "</" + start[1:strings.IndexAny(start, " >")] + ">"
			stopped := flood(c, "", body, 8<<20)
			c.expectStreamError("unsupported-stanza-type")
			waitDone(t, conn)
			<-stopped
			// The start tag and the decoder's read-ahead, not the element.
			checkReadBound(t, conn, len(start)+2*DecoderReadAhead)
		})
	}
}

// bounceHandler bounces every message the peer sends, echoing its payload
// (as fanout does with a stanza it cannot take).
type bounceHandler struct {
	errs chan error
	sent atomic.Int64
}

func (h *bounceHandler) Open(c *Conn) (Stream, error) { return &bounceStream{h: h, c: c}, nil }

type bounceStream struct {
	h *bounceHandler
	c *Conn
}

func (s *bounceStream) Message(id string, payload []byte) {
	if err := s.c.Bounce(id, payload, "bad"); err != nil {
		select {
		case s.h.errs <- err:
		default:
		}
		return
	}
	s.h.sent.Add(1)
}

func (s *bounceStream) Closed() {}

// TestSendQueueBytes: a peer that sends bad stanzas and never reads gets its
// bounces queued only up to SendQueueBytes, then it is closed as a slow
// consumer, although the stanza count stays far under SendQueue.
func TestSendQueueBytes(t *testing.T) {
	h := &bounceHandler{errs: make(chan error, 1)}
	var conn *Conn
	opened := make(chan *Conn, 1)
	env := startServer(t, nil, func(c *Config) {
		c.Handler = HandlerFunc(func(cn *Conn) (Stream, error) { opened <- cn; return h.Open(cn) })
	})
	c := env.raw()
	c.login("gcm.googleapis.com", "123")
	select {
	case conn = <-opened:
	case <-time.After(5 * time.Second):
		t.Fatal("not opened")
	}
	payload := strings.Repeat("b", DefaultMaxStanzaSize-200)
	stopped := flood(c, "", gcmMessage("m", payload), 64<<20)
	select {
	case err := <-h.errs:
		if !errors.Is(err, ErrQueueFull) {
			t.Fatalf("Bounce: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("never closed as a slow consumer (%d bounces queued, usage %+v)", h.sent.Load(), conn.Usage())
	}
	waitDone(t, conn)
	<-stopped
	u := conn.Usage()
	t.Logf("%d bounces, usage %+v", h.sent.Load(), u)
	if u.PeakQueuedBytes > DefaultSendQueueBytes {
		t.Fatalf("queued %d bytes, bound %d", u.PeakQueuedBytes, DefaultSendQueueBytes)
	}
}

// TestNothingActedOnAfterClose: once the server closes a connection (e.g. a
// revoked sender), what the peer still sends while the server waits for its
// </stream:stream> is neither delivered nor answered.
func TestNothingActedOnAfterClose(t *testing.T) {
	env, c, conn := loggedIn(t, false, nil)
	c.send(gcmMessage("before", "x"))
	if m := recv(t, env.h); m.id != "before" {
		t.Fatalf("got %q", m.id)
	}
	conn.Close("not-authorized")
	e := c.next()
	if _, ok := e.kid(nsStreams, "not-authorized"); e.XMLName.Local != "error" || !ok {
		t.Fatalf("want not-authorized, got %v %s", e.XMLName, e.Inner)
	}
	// The server's </stream:stream> is out; it now reads until ours.
	var after strings.Builder
	for i := 0; i < 10; i++ {
		after.WriteString(gcmMessage("after-"+string(rune('0'+i)), "y"))
	}
	after.WriteString(`<iq type='get' id='ping-late'><ping xmlns='urn:xmpp:ping'/></iq>`)
	c.send(after.String())
	c.expectEnd() // sends our </stream:stream>; nothing but the end comes back
	waitDone(t, conn)
	<-env.h.closed
	select {
	case m := <-env.h.msgs:
		t.Fatalf("delivered %q after Close", m.id)
	default:
	}
	if raw := c.rec.String(); strings.Contains(raw, "ping-late") {
		t.Fatalf("ping answered after Close: %s", raw)
	}
}

// TestQueueNeverDraining: a queue that always holds a few stanzas (pushed
// as fast as they are taken) keeps a bounded slice, not one slot per stanza
// ever queued.
func TestQueueNeverDraining(t *testing.T) {
	var q outQueue
	b := []byte("x")
	for i := 0; i < 10; i++ {
		q.push(false, b, 100, 1<<20)
	}
	for i := 0; i < 100000; i++ {
		if !q.push(false, b, 100, 1<<20) {
			t.Fatal("push refused")
		}
		if q.pop() == nil {
			t.Fatal("empty")
		}
	}
	if n, bytes, _ := q.usage(); n != 10 || bytes != 10 {
		t.Fatalf("queued %d stanzas, %d bytes", n, bytes)
	}
	if c := cap(q.items); c > 4*100+64 {
		t.Fatalf("slice capacity %d after 100000 stanzas with 10 queued", c)
	}
}
