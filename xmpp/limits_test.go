package xmpp

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestOversizeStanza: a stanza past MaxStanzaSize ends the stream with
// policy-violation before the whole stanza is read; one just under passes.
func TestOversizeStanza(t *testing.T) {
	const limit = 4096
	env, c, _ := loggedIn(t, false, func(c *Config) { c.MaxStanzaSize = limit })
	wrap := len(gcmMessage("big", ""))
	ok := strings.Repeat("a", limit-wrap)
	c.send(gcmMessage("big", ok))
	if m := recv(t, env.h); len(m.payload) != len(ok) {
		t.Fatalf("payload %d bytes", len(m.payload))
	}
	// Many stanzas back to back: the limit is per stanza, not per read.
	var many strings.Builder
	for i := 0; i < 50; i++ {
		many.WriteString(gcmMessage("s", strings.Repeat("b", 200)))
	}
	c.send(many.String())
	for i := 0; i < 50; i++ {
		recv(t, env.h)
	}
	// Too big: the server stops reading; write in the background since the
	// client would otherwise block on a full socket.
	go func() {
		_ = c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		_, _ = c.conn.Write([]byte(gcmMessage("huge", strings.Repeat("x", 1<<20))))
	}()
	c.expectStreamError("policy-violation")
	<-env.h.closed
}

// TestOversizeDuringNegotiation: the limit also bounds negotiation elements.
func TestOversizeDuringNegotiation(t *testing.T) {
	env := startServer(t, newTestHandler(false), func(c *Config) { c.MaxStanzaSize = 1024 })
	c := env.raw()
	c.open("gcm.googleapis.com")
	c.features()
	go func() {
		_, _ = c.conn.Write([]byte(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>` + strings.Repeat("A", 1<<16) + `</auth>`))
	}()
	c.expectStreamError("policy-violation")
}

// TestIdleTimeout: a connection that sends nothing is closed with
// connection-timeout; whitespace keepalives keep it alive.
func TestIdleTimeout(t *testing.T) {
	env, c, conn := loggedIn(t, false, func(c *Config) { c.IdleTimeout = 1500 * time.Millisecond })
	for i := 0; i < 4; i++ {
		time.Sleep(600 * time.Millisecond)
		c.send(" ")
	}
	select {
	case <-conn.Done():
		t.Fatal("closed despite keepalives")
	default:
	}
	start := time.Now()
	c.expectStreamError("connection-timeout")
	if d := time.Since(start); d < 500*time.Millisecond || d > 4*time.Second {
		t.Fatalf("timed out after %v", d)
	}
	<-env.h.closed
}

// TestNegotiationTimeout: a client that never finishes negotiating is cut off.
func TestNegotiationTimeout(t *testing.T) {
	env := startServer(t, newTestHandler(false), func(c *Config) { c.NegotiationTimeout = 500 * time.Millisecond })
	c := env.raw()
	c.open("gcm.googleapis.com")
	c.features()
	c.expectStreamError("connection-timeout")
}

// TestSlowConsumer: when the peer does not read and the queue fills, Send
// returns ErrQueueFull and the connection is closed; Send then returns
// ErrClosed.
func TestSlowConsumer(t *testing.T) {
	env, _, conn := loggedIn(t, false, func(c *Config) { c.SendQueue = 8; c.WriteTimeout = time.Second })
	payload := []byte(strings.Repeat("z", 16<<10))
	var err error
	deadline := time.Now().Add(10 * time.Second)
	for err == nil && time.Now().Before(deadline) {
		err = conn.Send(payload, "")
	}
	if !errors.Is(err, ErrQueueFull) {
		t.Fatalf("Send: %v", err)
	}
	if err := conn.Send(payload, ""); !errors.Is(err, ErrClosed) {
		t.Fatalf("Send after overflow: %v", err)
	}
	select {
	case <-conn.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("slow consumer not closed")
	}
	<-env.h.closed
}

// TestServerClose: Close sends system-shutdown to every connection, waits for
// them, makes Serve return, and later connections are refused.
func TestServerClose(t *testing.T) {
	h := newTestHandler(false)
	env := startServer(t, h, nil)
	a, b := env.raw(), env.raw()
	a.login("gcm.googleapis.com", "123")
	b.login("gcm.googleapis.com", "456")
	ca, cb := connOf(t, h), connOf(t, h)
	half := env.raw() // still negotiating
	half.open("gcm.googleapis.com")
	half.features()
	var wg sync.WaitGroup
	for _, c := range []*rawClient{a, b} {
		wg.Add(1)
		go func(c *rawClient) {
			defer wg.Done()
			c.expectStreamError("system-shutdown")
		}(c)
	}
	done := make(chan error, 1)
	go func() { done <- env.srv.Close() }()
	wg.Wait()
	half.expectStreamError("system-shutdown")
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return")
	}
	for _, c := range []*Conn{ca, cb} {
		select {
		case <-c.Done():
		default:
			t.Fatal("conn not done after Close")
		}
	}
	if n := env.srv.ConnCount(); n != 0 {
		t.Fatalf("ConnCount %d", n)
	}
}

// TestOpenError: the Handler's error becomes the stream error.
func TestOpenError(t *testing.T) {
	for _, tc := range []struct {
		err  error
		cond string
	}{
		{&StreamError{Condition: "policy-violation", Text: "sender revoked"}, "policy-violation"},
		{errors.New("boom"), "internal-server-error"},
		{fmt.Errorf("wrapped: %w", conditionErr("resource-constraint")), "resource-constraint"},
	} {
		env := startServer(t, nil, func(c *Config) {
			c.Handler = HandlerFunc(func(*Conn) (Stream, error) { return nil, tc.err })
		})
		c := env.raw()
		c.login("gcm.googleapis.com", "123")
		c.expectStreamError(tc.cond)
	}
}

// TestBadInput: XML that is not well-formed, a non-stanza top-level element
// and a restarted stream after negotiation end the stream with the matching
// error; a peer's stream error is answered by closing.
func TestBadInput(t *testing.T) {
	for _, tc := range []struct{ in, cond string }{
		{`<message><gcm xmlns="google:mobile:data">x</gcm></mesage>`, "not-well-formed"},
		{`<foo xmlns="jabber:client"/>`, "unsupported-stanza-type"},
		{`<message xmlns="urn:other"/>`, "unsupported-stanza-type"},
	} {
		_, c, _ := loggedIn(t, false, nil)
		c.send(tc.in)
		c.expectStreamError(tc.cond)
	}
	_, c, conn := loggedIn(t, false, nil)
	c.send(`<stream:error><conflict xmlns="urn:ietf:params:xml:ns:xmpp-streams"/></stream:error>`)
	c.expectEnd()
	<-conn.Done()
}

// TestPeerVanishes: a TCP close without </stream:stream> still calls Closed
// once and unregisters the connection.
func TestPeerVanishes(t *testing.T) {
	env, c, conn := loggedIn(t, false, nil)
	c.conn.NetConn().Close()
	select {
	case <-conn.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("not done")
	}
	<-env.h.closed
	if n := env.srv.ConnCount(); n != 0 {
		t.Fatalf("ConnCount %d", n)
	}
}

// TestPanickingStream: a panic in Stream.Message closes that connection with
// internal-server-error instead of crashing the server.
func TestPanickingStream(t *testing.T) {
	env := startServer(t, nil, func(c *Config) {
		c.Handler = HandlerFunc(func(*Conn) (Stream, error) { return panicStream{}, nil })
	})
	c := env.raw()
	c.login("gcm.googleapis.com", "123")
	c.send(gcmMessage("p", "x"))
	c.expectStreamError("internal-server-error")
}

type conditionErr string

func (e conditionErr) Error() string           { return string(e) }
func (e conditionErr) StreamCondition() string { return string(e) }

type panicStream struct{}

func (panicStream) Message(string, []byte) { panic("boom") }
func (panicStream) Closed()                {}

// Failed-login throttling is tested in login_test.go (listener) and in
// internal/limit (the budgets).

// TestLoadOrCreateCertificate: creates once (key 0600), loads afterwards, and
// refuses a lone certificate or key.
func TestLoadOrCreateCertificate(t *testing.T) {
	dir := t.TempDir()
	cf, kf := filepath.Join(dir, "sub", "cert.pem"), filepath.Join(dir, "sub", "key.pem")
	hosts := []string{"localhost", "127.0.0.1", "::1", "gcm.googleapis.com"}
	c1, created, err := LoadOrCreateCertificate(cf, kf, hosts)
	if err != nil || !created {
		t.Fatalf("create: %v %v", created, err)
	}
	st, err := os.Stat(kf)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key mode %v %v", st.Mode(), err)
	}
	leaf := c1.Leaf
	if leaf == nil {
		t.Fatal("no leaf")
	}
	if err := leaf.VerifyHostname("gcm.googleapis.com"); err != nil {
		t.Fatal(err)
	}
	if err := leaf.VerifyHostname("127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	if err := leaf.VerifyHostname("::1"); err != nil {
		t.Fatal(err)
	}
	if y := leaf.NotAfter.Sub(leaf.NotBefore); y < 9*365*24*time.Hour {
		t.Fatalf("validity %v", y)
	}
	c2, created, err := LoadOrCreateCertificate(cf, kf, hosts)
	if err != nil || created {
		t.Fatalf("load: %v %v", created, err)
	}
	if string(c2.Certificate[0]) != string(c1.Certificate[0]) {
		t.Fatal("loaded a different certificate")
	}
	if err := os.Remove(kf); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadOrCreateCertificate(cf, kf, hosts); err == nil {
		t.Fatal("lone certificate accepted")
	}
}

// TestAuthenticatorGetsContext: the Authenticator runs with a context that
// ends with the negotiation.
func TestAuthenticatorGetsContext(t *testing.T) {
	got := make(chan error, 1)
	env := startServer(t, newTestHandler(false), func(c *Config) {
		c.NegotiationTimeout = 300 * time.Millisecond
		c.Auth = AuthenticatorFunc(func(ctx context.Context, user, pw string) (string, error) {
			<-ctx.Done()
			got <- ctx.Err()
			return "", ctx.Err()
		})
	})
	c := env.raw()
	c.open("gcm.googleapis.com")
	c.features()
	c.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>` + plainBlob("", "123", "x") + `</auth>`)
	select {
	case err := <-got:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("ctx err %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("authenticator context never ended")
	}
}
