package httpapi_test

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/ccsd/ccsd/auth"
	"github.com/ccsd/ccsd/internal/limit"
)

// newThrottledServer is newAPIServer with a failed-login limiter.
func newThrottledServer(t *testing.T, logins *limit.Logins) *apiServer {
	t.Helper()
	db := openStore(t)
	senders := auth.NewSenders(db)
	ts := httptest.NewTLSServer(newNotificationHandler(db, senders, 0, logins))
	t.Cleanup(ts.Close)
	return &apiServer{Server: ts, db: db, senders: senders}
}

func wantThrottled(t *testing.T, desc string, a answer) {
	t.Helper()
	wantError(t, desc, a, http.StatusTooManyRequests)
	if s, err := strconv.Atoi(a.Header.Get("Retry-After")); err != nil || s < 1 {
		t.Errorf("%s: Retry-After %q", desc, a.Header.Get("Retry-After"))
	}
}

// TestNotificationKeyThrottle: wrong API keys spend the project's and the address's
// failure budgets. Past the project's, wrong keys get 429 + Retry-After but
// the right key still works; past the address's, everything from it gets
// 429 before the key is checked.
func TestNotificationKeyThrottle(t *testing.T) {
	s := newThrottledServer(t, limit.NewLogins(100, 3))
	snd := s.newSender(t)
	bad := sender{snd.id, "wrong"}
	for i := 0; i < 3; i++ {
		wantError(t, "wrong key within the budget", s.do(t, bad, "GET", getPath("n"), ""), http.StatusUnauthorized)
	}
	wantThrottled(t, "wrong key past the project's budget", s.do(t, bad, "GET", getPath("n"), ""))
	wantError(t, "right key", s.do(t, snd, "GET", getPath("n"), ""), http.StatusNotFound, "notification_key not found")

	s = newThrottledServer(t, limit.NewLogins(3, -1))
	snd = s.newSender(t)
	for i := 0; i < 3; i++ {
		wantError(t, "wrong key within the budget", s.do(t, sender{snd.id, "wrong"}, "GET", getPath("n"), ""), http.StatusUnauthorized)
	}
	wantThrottled(t, "right key past the address's budget", s.do(t, snd, "GET", getPath("n"), ""))
}
