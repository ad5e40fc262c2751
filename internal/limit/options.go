package limit

import "time"

// WithClock makes r read the time from now instead of time.Now, so a
// caller with its own clock (a router's injected one, in tests) ages its
// buckets on that clock. Call it before r is used. It returns r; a nil r or
// now changes nothing.
func (r *Rate) WithClock(now func() time.Time) *Rate {
	if r != nil && now != nil {
		r.now = now
	}
	return r
}

// Burst returns the events a key may spend at once: 0 for a disabled
// limiter.
func (r *Rate) Burst() int {
	if r.Disabled() {
		return 0
	}
	return int(r.burst)
}
