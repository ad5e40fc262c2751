package xmpp

import (
	"context"
	"sync"
	"time"
)

// Failed-login throttling: every SASL answer to an address that recently
// failed is delayed. The delay grows with the number of recent failures
// (0, 0, 1s, 2s, 4s, 8s, then 10s) and an address is forgotten
// throttleForget after its last failure. The table is bounded: when full,
// forgotten entries are swept, and if that frees nothing the oldest half is
// dropped, so an attacker spraying addresses only loses us the history.
const (
	throttleFree    = 2 // failures answered without delay
	throttleBase    = time.Second
	throttleMax     = 10 * time.Second
	throttleForget  = 5 * time.Minute
	throttleEntries = 16384
)

type failRecord struct {
	n    int
	last time.Time
}

type throttle struct {
	mu   sync.Mutex
	m    map[string]failRecord
	base time.Duration // throttleBase; shortened in tests
	max  time.Duration
	now  func() time.Time
}

func newThrottle() *throttle {
	return &throttle{m: make(map[string]failRecord), base: throttleBase, max: throttleMax, now: time.Now}
}

// delay returns how long to wait before answering a login from addr.
func (t *throttle) delay(addr string) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	r, ok := t.m[addr]
	if !ok {
		return 0
	}
	if t.now().Sub(r.last) > throttleForget {
		delete(t.m, addr)
		return 0
	}
	if r.n < throttleFree {
		return 0
	}
	d := t.base << (r.n - throttleFree)
	if d > t.max || d <= 0 || r.n-throttleFree > 30 {
		d = t.max
	}
	return d
}

// fail records a failed login from addr.
func (t *throttle) fail(addr string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	r, ok := t.m[addr]
	if ok && now.Sub(r.last) > throttleForget {
		r = failRecord{}
	}
	if !ok && len(t.m) >= throttleEntries {
		t.sweep(now)
	}
	r.n++
	r.last = now
	t.m[addr] = r
}

// sweep drops forgotten entries, or the older half when none are forgotten.
// Called with t.mu held.
func (t *throttle) sweep(now time.Time) {
	for k, r := range t.m {
		if now.Sub(r.last) > throttleForget {
			delete(t.m, k)
		}
	}
	if len(t.m) < throttleEntries {
		return
	}
	// Nothing expired: drop the entries older than the median age (roughly;
	// map order is random, so take the mean instead of sorting).
	var sum time.Duration
	for _, r := range t.m {
		sum += now.Sub(r.last)
	}
	mean := sum / time.Duration(len(t.m))
	for k, r := range t.m {
		if now.Sub(r.last) >= mean {
			delete(t.m, k)
		}
	}
}

// wait sleeps for d or until ctx is done.
func wait(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
