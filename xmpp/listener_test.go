package xmpp

import (
	"errors"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ccsd/ccsd/internal/limit"
)

// dialIdle opens a TCP connection from source ip that never sends a byte.
func (e *testEnv) dialIdle(ip string) net.Conn {
	e.t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", e.addr)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	return c
}

// closedByServer polls c until the server closed it (EOF or reset) or
// within passes; it reports which.
func closedByServer(c net.Conn, within time.Duration) bool {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		_, err := c.Read(make([]byte, 1))
		if err == nil {
			continue // a server byte: not expected before TLS, keep polling
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			continue
		}
		return true
	}
	return false
}

// TestHandshakeTimeout: a socket that never sends a ClientHello is closed
// after HandshakeTimeout, well before NegotiationTimeout.
func TestHandshakeTimeout(t *testing.T) {
	env := startServer(t, newTestHandler(false), func(c *Config) {
		c.HandshakeTimeout = 300 * time.Millisecond
		c.NegotiationTimeout = time.Minute
	})
	c := env.dialIdle("127.0.0.1")
	if !closedByServer(c, 10*time.Second) {
		t.Fatal("idle pre-TLS socket still open after 10s with a 300ms handshake timeout")
	}
	// A client that handshakes promptly still gets the negotiation timeout
	// for the rest, not the handshake's.
	r := env.raw()
	r.open("gcm.googleapis.com")
	r.features()
	time.Sleep(500 * time.Millisecond) // longer than the handshake timeout: must not cut us
	r.login2()
}

// login2 finishes a login whose stream was already opened (features read).
func (c *rawClient) login2() {
	c.t.Helper()
	c.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>` + plainBlob("", "123", testPassword) + `</auth>`)
	if e := c.next(); e.XMLName.Local != "success" {
		c.t.Fatalf("want success, got %v %s", e.XMLName, e.Inner)
	}
}

// TestUnauthPerAddr: past MaxUnauthPerAddr not-yet-negotiated connections
// from one address, the next one is closed at once, while another address
// still logs in; negotiated connections do not count.
func TestUnauthPerAddr(t *testing.T) {
	const max = 3
	h := newTestHandler(false)
	env := startServer(t, h, func(c *Config) {
		c.MaxUnauthPerAddr = max
		c.HandshakeTimeout = time.Minute
	})
	idle := make([]net.Conn, max)
	for i := range idle {
		idle[i] = env.dialIdle("127.0.0.1")
	}
	waitFor(t, "idle connections counted", func() bool { return env.srv.unauth.InUse("127.0.0.1") == max })
	if !closedByServer(env.dialIdle("127.0.0.1"), 5*time.Second) {
		t.Fatal("connection past the per-address limit not closed")
	}
	for _, c := range idle {
		if closedByServer(c, 100*time.Millisecond) {
			t.Fatal("a connection within the limit was closed")
		}
	}
	env.rawFrom("127.0.0.2").login("gcm.googleapis.com", "123")
	connOf(t, h)

	// Freeing one slot lets one more in; a negotiated session frees its slot.
	idle[0].Close()
	waitFor(t, "slot released", func() bool { return env.srv.unauth.InUse("127.0.0.1") == max-1 })
	env.raw().login("gcm.googleapis.com", "456")
	connOf(t, h)
	waitFor(t, "negotiated slot released", func() bool { return env.srv.unauth.InUse("127.0.0.1") == max-1 })
	if closedByServer(env.dialIdle("127.0.0.1"), 300*time.Millisecond) {
		t.Fatal("connection within the limit closed")
	}
}

// TestGlobalConnLimit: the shared Conns count bounds open connections across
// addresses and servers; past it new connections are closed at once, and a
// closed connection frees its slot.
func TestGlobalConnLimit(t *testing.T) {
	global := limit.NewCount(4)
	h := newTestHandler(false)
	env := startServer(t, h, func(c *Config) { c.Conns = global; c.HandshakeTimeout = time.Minute })
	env2 := startServer(t, newTestHandler(false), func(c *Config) { c.Conns = global })
	env.raw().login("gcm.googleapis.com", "123") // negotiated connections count too
	connOf(t, h)
	a := env.dialIdle("127.0.0.1")
	env.dialIdle("127.0.0.2")
	env2.dialIdle("127.0.0.3")
	waitFor(t, "four connections counted", func() bool { return global.InUse(limit.GlobalKey) == 4 })
	if !closedByServer(env.dialIdle("127.0.0.4"), 5*time.Second) {
		t.Fatal("connection past the global limit not closed")
	}
	if !closedByServer(env2.dialIdle("127.0.0.5"), 5*time.Second) {
		t.Fatal("connection past the global limit (other server) not closed")
	}
	a.Close()
	waitFor(t, "slot released", func() bool { return global.InUse(limit.GlobalKey) == 3 })
	env.rawFrom("127.0.0.6").login("gcm.googleapis.com", "456")
}

// waitFor polls cond for up to 5s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// emfileListener fails its first n Accepts with EMFILE, as a process at its
// descriptor limit does.
type emfileListener struct {
	net.Listener
	n     int
	calls atomic.Int32
}

func (l *emfileListener) Accept() (net.Conn, error) {
	if int(l.calls.Add(1)) <= l.n {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

// TestAcceptBacksOffOnEMFILE: accept errors of a full descriptor table make
// Serve wait and retry (not return, not spin), and it serves again after.
func TestAcceptBacksOffOnEMFILE(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &emfileListener{Listener: inner, n: 5}
	env := startServer(t, newTestHandler(false), nil)
	go func() { _ = env.srv.Serve(l) }()
	env.addr = inner.Addr().String()
	start := time.Now()
	env.raw().login("gcm.googleapis.com", "123") // served once the errors stop
	// 5 failures back off 5+10+20+40+80ms: a spinning loop would take ~0.
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Fatalf("5 EMFILE accepts retried within %v: no backoff", d)
	}
	if n := l.calls.Load(); n != 6 && n != 7 {
		t.Fatalf("%d accepts for 5 failures and one connection", n)
	}
}
