package xmpp

import (
	"context"
	"crypto/tls"
	"encoding/xml"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ccsd/ccsd/internal/limit"
)

// recordingLimiter is a real limit.Logins that also records the holds its
// Check returned, so tests assert on the limiter's decision, not on time.
type recordingLimiter struct {
	*limit.Logins
	mu    sync.Mutex
	holds []time.Duration
}

func (r *recordingLimiter) Check(addr, identity string) (time.Duration, bool) {
	d, ok := r.Logins.Check(addr, identity)
	if ok {
		r.mu.Lock()
		r.holds = append(r.holds, d)
		r.mu.Unlock()
	}
	return d, ok
}

func (r *recordingLimiter) lastHold() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.holds[len(r.holds)-1]
}

// rawFrom is env.raw with the client's source address set to ip (all of
// 127/8 is loopback on Linux).
func (e *testEnv) rawFrom(ip string) *rawClient {
	e.t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", e.addr, e.clientTLS())
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	rec := &recorder{r: c}
	return &rawClient{t: e.t, conn: c, rec: rec, d: xml.NewDecoder(rec)}
}

// tryLogin sends one SASL PLAIN attempt for user "123" and returns the
// answer's element name and, for a <failure/>, its condition.
func tryLogin(c *rawClient, pw string) (answer, cond string) {
	c.open("gcm.googleapis.com")
	c.features()
	c.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>` + plainBlob("", "123", pw) + `</auth>`)
	e := c.next()
	for _, k := range e.Kids {
		if k.XMLName.Local != "text" {
			cond = k.XMLName.Local
		}
	}
	return e.XMLName.Local, cond
}

// TestLoginCorrectAfterIdentityFailures: wrong keys for one identity spend
// its budget, after which further wrong attempts are answered
// temporary-auth-failure; the right key still logs in, held by the limiter
// for at most a second (the limiter's decision is asserted, not a timing).
func TestLoginCorrectAfterIdentityFailures(t *testing.T) {
	lim := &recordingLimiter{Logins: limit.NewLogins(100, 3)}
	env := startServer(t, newTestHandler(false), func(c *Config) { c.Logins = lim })
	var conds []string
	for i := 0; i < 5; i++ {
		_, cond := tryLogin(env.raw(), "bad")
		conds = append(conds, cond)
	}
	want := []string{"not-authorized", "not-authorized", "not-authorized", "temporary-auth-failure", "temporary-auth-failure"}
	for i := range want {
		if conds[i] != want[i] {
			t.Fatalf("wrong attempts answered %v, want %v", conds, want)
		}
	}
	if ans, cond := tryLogin(env.raw(), testPassword); ans != "success" {
		t.Fatalf("correct login after the identity's failures: %s %s", ans, cond)
	}
	if d := lim.lastHold(); d <= 0 || d > limit.MaxLoginHold || limit.MaxLoginHold > time.Second {
		t.Fatalf("correct login held %v (max %v), want within (0, 1s]", d, limit.MaxLoginHold)
	}
}

// TestLoginParallelBudget: 100 parallel wrong attempts from one address
// share its failure budget: past it they are refused with
// temporary-auth-failure, whatever the number of connections, while another
// address is still answered normally.
func TestLoginParallelBudget(t *testing.T) {
	const budget, n = 20, 100
	env := startServer(t, newTestHandler(false), func(c *Config) {
		c.Logins = limit.NewLogins(budget, -1)
		c.MaxUnauthPerAddr = -1 // this test is about logins, not connections
		// A slow check (like a password hash) keeps attempts in flight
		// together: the budget must hold while none has failed yet.
		c.Auth = AuthenticatorFunc(func(ctx context.Context, user, pw string) (string, error) {
			time.Sleep(200 * time.Millisecond)
			return testAuth{}.Authenticate(ctx, user, pw)
		})
	})
	var refused, rejected atomic.Int32
	var wg sync.WaitGroup
	clients := make([]*rawClient, n)
	for i := range clients {
		clients[i] = env.raw()
	}
	for _, c := range clients {
		wg.Add(1)
		go func(c *rawClient) {
			defer wg.Done()
			switch _, cond := tryLogin(c, "bad"); cond {
			case "temporary-auth-failure":
				refused.Add(1)
			case "not-authorized":
				rejected.Add(1)
			}
		}(c)
	}
	wg.Wait()
	// The budget refills at budget/min: a slow run may earn one or two more.
	if r, j := refused.Load(), rejected.Load(); r+j != n || j < budget || j > budget+3 {
		t.Fatalf("%d refused, %d answered not-authorized; want %d answered", r, j, budget)
	}
	if _, cond := tryLogin(env.rawFrom("127.0.0.2"), "bad"); cond != "not-authorized" {
		t.Fatalf("another address: %s", cond)
	}
}

// TestNegotiationWritesCoalesced: what the server writes during
// negotiation waits for its next read, so that the stream header and the
// features (written by mellium one after the other) reach the client in
// one TLS record, which one Read returns whole.
func TestNegotiationWritesCoalesced(t *testing.T) {
	env := startServer(t, newTestHandler(false), nil)
	conn := env.dialTLS()
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write([]byte(`<?xml version='1.0'?><stream:stream to='gcm.googleapis.com' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	got := string(buf[:n])
	if !strings.Contains(got, "<stream:stream") || !strings.Contains(got, "mechanisms") {
		t.Fatalf("first record %q: want the header and the features", got)
	}
}
