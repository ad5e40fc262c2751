package limit

import (
	"testing"
	"time"
)

func newTestLogins(perAddr, perID int) (*Logins, *clock) {
	c := &clock{t: time.Unix(1000, 0)}
	l := NewLogins(perAddr, perID)
	l.addr.now, l.id.now = c.now, c.now
	return l, c
}

// TestLoginsAddressBudget: an address's failures are reserved at Check and
// shared by all its attempts; past the budget it is refused with the time
// until it has one again; successes give the reservation back; another
// address is untouched.
func TestLoginsAddressBudget(t *testing.T) {
	l, c := newTestLogins(3, -1)
	for i := 0; i < 3; i++ { // checked, not yet decided: still reserved
		if _, ok := l.Check("1.2.3.4:1000", ""); !ok {
			t.Fatalf("attempt %d refused", i)
		}
	}
	retry, ok := l.Check("1.2.3.4:2000", "")
	if ok || retry != 20*time.Second {
		t.Fatalf("4th parallel attempt: ok=%v retry=%v, want refused for 20s", ok, retry)
	}
	if _, ok := l.Check("5.6.7.8:1", ""); !ok {
		t.Fatal("other address refused")
	}
	l.Succeeded("1.2.3.4:1000", "")
	if _, ok := l.Check("1.2.3.4:3000", ""); !ok {
		t.Fatal("a success did not give its reservation back")
	}
	c.t = c.t.Add(20 * time.Second)
	if _, ok := l.Check("1.2.3.4:3000", ""); !ok {
		t.Fatal("no attempt after the refill time")
	}
}

// TestLoginsIdentityBudget: an identity's spent budget holds attempts at it
// for at most MaxLoginHold and marks further failures as throttled; it never
// refuses an attempt, so its owner still gets in.
func TestLoginsIdentityBudget(t *testing.T) {
	l, c := newTestLogins(-1, 2)
	for i := 0; i < 2; i++ {
		if d, ok := l.Check("1.1.1.1:1", "sender"); !ok || d != 0 {
			t.Fatalf("attempt %d: hold %v ok %v", i, d, ok)
		}
		if r := l.Failed("1.1.1.1:1", "sender"); r != 0 {
			t.Fatalf("failure %d within the budget throttled for %v", i, r)
		}
	}
	d, ok := l.Check("9.9.9.9:1", "sender") // the owner, elsewhere
	if !ok || d != MaxLoginHold {
		t.Fatalf("spent identity: hold %v ok %v, want %v", d, ok, MaxLoginHold)
	}
	if r := l.Failed("1.1.1.1:1", "sender"); r != 30*time.Second {
		t.Fatalf("failure past the budget: retry %v, want 30s", r)
	}
	if d, _ := l.Check("1.1.1.1:1", "other"); d != 0 {
		t.Fatalf("other identity held %v", d)
	}
	c.t = c.t.Add(30 * time.Second)
	if d, _ := l.Check("1.1.1.1:1", "sender"); d != 0 {
		t.Fatalf("held %v after the refill time", d)
	}
}

// TestLoginsScopedAndNil: scopes separate identities; a nil Logins allows
// everything.
func TestLoginsScopedAndNil(t *testing.T) {
	l, _ := newTestLogins(-1, 1)
	dev, app := l.Scoped("device:"), l.Scoped("sender:")
	dev.Check("1.1.1.1:1", "42")
	dev.Failed("1.1.1.1:1", "42")
	if d, _ := dev.Check("1.1.1.1:1", "42"); d == 0 {
		t.Fatal("scoped identity not held")
	}
	if d, _ := app.Check("1.1.1.1:1", "42"); d != 0 {
		t.Fatal("identity shared across scopes")
	}
	var n *Logins
	if d, ok := n.Check("a", "b"); !ok || d != 0 || n.Failed("a", "b") != 0 {
		t.Fatal("nil Logins limited")
	}
	n.Succeeded("a", "b")
}
