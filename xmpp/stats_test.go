package xmpp

import (
	"testing"
	"time"

	"github.com/ccsd/ccsd/internal/limit"
)

// TestStatsLogins: logins are counted by outcome, and a session while it
// is open.
func TestStatsLogins(t *testing.T) {
	h := newTestHandler(false)
	// One wrong attempt per identity a minute: the second is throttled.
	env := startServer(t, h, func(c *Config) { c.Logins = limit.NewLogins(-1, 1) })
	if ans, _ := tryLogin(env.raw(), "bad"); ans != "failure" {
		t.Fatalf("wrong key answered %s", ans)
	}
	if _, cond := tryLogin(env.raw(), "bad"); cond != "temporary-auth-failure" {
		t.Fatalf("second wrong key answered %s, want temporary-auth-failure", cond)
	}
	env.raw().login("gcm.googleapis.com", "456")
	connOf(t, h)
	st := env.srv.Stats()
	want := Stats{Sessions: 1, LoginsOK: 1, LoginsFailed: 2, LoginsThrottled: 1}
	if st != want {
		t.Fatalf("stats %+v, want %+v", st, want)
	}
}

// TestStatsRefused: connections closed at accept are counted under the
// limit that closed them.
func TestStatsRefused(t *testing.T) {
	global := limit.NewCount(2)
	env := startServer(t, newTestHandler(false), func(c *Config) {
		c.Conns = global
		c.MaxUnauthPerAddr = 1
		c.HandshakeTimeout = time.Minute
	})
	env.dialIdle("127.0.0.1")
	waitFor(t, "the idle connection counted", func() bool { return env.srv.unauth.InUse("127.0.0.1") == 1 })
	if !closedByServer(env.dialIdle("127.0.0.1"), 5*time.Second) {
		t.Fatal("connection past the per-address limit not closed")
	}
	env.dialIdle("127.0.0.2")
	waitFor(t, "two connections counted", func() bool { return global.InUse(limit.GlobalKey) == 2 })
	if !closedByServer(env.dialIdle("127.0.0.3"), 5*time.Second) {
		t.Fatal("connection past the global limit not closed")
	}
	if st := env.srv.Stats(); st.RefusedPerAddr != 1 || st.RefusedGlobal != 1 || st.Sessions != 0 {
		t.Fatalf("stats %+v, want one refusal of each kind and no session", st)
	}
}
