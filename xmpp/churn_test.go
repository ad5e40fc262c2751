package xmpp

import (
	"runtime"
	"testing"
)

// churnHandler opens a stream for every connection and keeps nothing: a
// leak found after the churn is the server's, not the test handler's.
type churnHandler struct{}

func (churnHandler) Open(*Conn) (Stream, error) { return churnStream{}, nil }

type churnStream struct{}

func (churnStream) Message(string, []byte) {}
func (churnStream) Closed()                {}

// TestSessionChurnLeavesNothing: sessions that come and go, politely,
// abruptly after login, or in the middle of negotiation, leave no
// connection, per-identity count or goroutine behind once they are gone.
// Long-lived servers see this churn all day; a leak of a few bytes per
// session is what eventually takes them down.
func TestSessionChurnLeavesNothing(t *testing.T) {
	h := newTestHandler(false)
	env := startServer(t, h, func(c *Config) { c.Handler = churnHandler{} })
	before := runtime.NumGoroutine()
	const rounds = 150
	for i := 0; i < rounds; i++ {
		c := env.raw()
		switch i % 3 {
		case 0: // logs in and says goodbye
			c.login("gcm.googleapis.com", "123")
			c.send(`<message id="m"><gcm xmlns="google:mobile:data">{}</gcm></message>`)
			c.send(`</stream:stream>`)
			c.expectEnd()
		case 1: // logs in and vanishes
			c.login("gcm.googleapis.com", "dev1")
			_ = c.conn.Close()
		case 2: // vanishes in the middle of negotiation
			c.open("gcm.googleapis.com")
			_ = c.conn.Close()
		}
	}
	waitFor(t, "every churned session to be gone", func() bool {
		env.srv.mu.Lock()
		idents := len(env.srv.perIdentity)
		env.srv.mu.Unlock()
		return env.srv.ConnCount() == 0 && idents == 0 && runtime.NumGoroutine() <= before+2
	})
}
