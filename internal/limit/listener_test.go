package limit

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

// acceptAll serves l, keeping every accepted connection open until the test
// ends, and reports each on the channel.
func acceptAll(t *testing.T, l net.Listener) <-chan net.Conn {
	ch := make(chan net.Conn, 64)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			ch <- c
		}
	}()
	t.Cleanup(func() { l.Close() })
	return ch
}

func dialFrom(t *testing.T, ip, addr string) net.Conn {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// closedSoon reports whether the peer closed c within d.
func closedSoon(c net.Conn, d time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(d))
	_, err := c.Read(make([]byte, 1))
	return err != nil && !errors.Is(err, os.ErrDeadlineExceeded)
}

// TestListenerLimits: connections past the per-address or the global count
// are closed at once; other addresses still get in; closing a connection
// frees its slots.
func TestListenerLimits(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	global, perAddr := NewCount(3), NewCount(2)
	l := NewListener(raw, global, perAddr)
	accepted := acceptAll(t, l)
	addr := raw.Addr().String()
	recv := func() net.Conn {
		t.Helper()
		select {
		case c := <-accepted:
			return c
		case <-time.After(5 * time.Second):
			t.Fatal("connection not accepted")
			return nil
		}
	}
	dialFrom(t, "127.0.0.1", addr)
	first := recv()
	dialFrom(t, "127.0.0.1", addr)
	recv()
	if !closedSoon(dialFrom(t, "127.0.0.1", addr), 5*time.Second) {
		t.Fatal("third connection of one address not closed")
	}
	dialFrom(t, "127.0.0.2", addr)
	recv()
	if !closedSoon(dialFrom(t, "127.0.0.3", addr), 5*time.Second) {
		t.Fatal("connection past the global limit not closed")
	}
	if n := l.Refused.Load(); n != 2 {
		t.Fatalf("refused %d, want 2", n)
	}
	first.Close()
	first.Close() // a second Close releases nothing more
	if g, a := global.InUse(GlobalKey), perAddr.InUse("127.0.0.1"); g != 2 || a != 1 {
		t.Fatalf("after close: global %d, per address %d", g, a)
	}
	dialFrom(t, "127.0.0.3", addr)
	recv()
}
