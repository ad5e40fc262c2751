package xmpp

import (
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// TestPlainTextClientIsTold: a client that speaks XMPP in the clear to a
// direct-TLS port (one configured for STARTTLS) is answered at once with a
// stream error that says what to do, not left waiting for a timeout; a TLS
// client on the same server still logs in.
func TestPlainTextClientIsTold(t *testing.T) {
	env := startServer(t, newTestHandler(false), nil)
	c, err := net.DialTimeout("tcp", env.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = io.WriteString(c, `<?xml version='1.0'?><stream:stream to='gcm.googleapis.com' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("reading the answer: %v (got %q)", err, b)
	}
	got := string(b)
	for _, want := range []string{"<stream:stream", "<stream:error><policy-violation", "direct TLS", "</stream:stream>"} {
		if !strings.Contains(got, want) {
			t.Fatalf("plain-text client got %q, want it to contain %q", got, want)
		}
	}
	env.raw().login("gcm.googleapis.com", "123")
}
