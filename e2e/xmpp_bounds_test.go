package e2e

import (
	"strings"
	"testing"
	"time"
)

// TestNestedStreamTagsBothPorts: on the app-server and the device port, a
// logged-in client that nests <a:stream> tags without end gets the stream
// error unsupported-stanza-type and is closed, instead of making ccsd hold
// everything it sends; ccsd keeps serving.
func TestNestedStreamTagsBothPorts(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	d := s.checkin()
	for name, c := range map[string]*client{"app server": s.appServer(), "device": s.deviceConn(d)} {
		done := make(chan struct{})
		go func() {
			defer close(done)
			chunk := strings.Repeat(`<a:stream>`, 1600)
			_ = c.conn.SetWriteDeadline(time.Now().Add(wait))
			if _, err := c.conn.Write([]byte(`<a:stream xmlns:a="urn:x">`)); err != nil {
				return
			}
			for n := 0; n < 32<<20; n += len(chunk) {
				if _, err := c.conn.Write([]byte(chunk)); err != nil {
					return // closed by ccsd
				}
			}
		}()
		last := c.closed(wait)
		if last == nil || last.XMLName.Local != "error" || !strings.Contains(string(last.Inner), "unsupported-stanza-type") {
			t.Fatalf("%s: stream ended with %v, want unsupported-stanza-type", name, last)
		}
		<-done
	}
	// Still serving.
	app := s.appServer()
	app.close()
}
