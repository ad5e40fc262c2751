package limit

import "testing"

// TestLoginRefusals: refused checks and throttled failures are counted,
// across every wrapped limiter; allowed attempts are not.
func TestLoginRefusals(t *testing.T) {
	var r LoginRefusals
	logins := NewLogins(1, 1)
	app, dev := r.Wrap(logins), r.Wrap(logins.Scoped("device:"))
	if _, ok := app.Check("192.0.2.1:1", "a"); !ok {
		t.Fatal("first attempt refused")
	}
	if retry := app.Failed("192.0.2.1:1", "a"); retry != 0 {
		t.Fatalf("first failure throttled (%v)", retry)
	}
	if _, ok := dev.Check("192.0.2.1:2", "d"); ok { // the address's budget is spent
		t.Fatal("attempt past the address's budget allowed")
	}
	if _, ok := app.Check("192.0.2.9:1", "a"); !ok {
		t.Fatal("another address refused")
	}
	if retry := app.Failed("192.0.2.9:1", "a"); retry == 0 { // the identity's budget is spent
		t.Fatal("failure past the identity's budget not throttled")
	}
	app.Succeeded("192.0.2.9:1", "a")
	if got := r.Load(); got != 2 {
		t.Fatalf("%d refusals counted, want 2", got)
	}
}
