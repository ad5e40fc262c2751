package limit

import (
	"sync"
	"time"
)

// DefaultMaxKeys bounds the keys one Rate remembers when NewRate gets 0.
const DefaultMaxKeys = 65536

// bucket is one key's tokens as of last.
type bucket struct {
	tokens float64
	last   time.Time
}

// Rate is a keyed token bucket: each key may spend Burst events at once and
// gains one more every Every, up to Burst. The zero value is not usable;
// build one with NewRate. Safe for concurrent use.
type Rate struct {
	burst   float64
	every   time.Duration
	maxKeys int

	mu  sync.Mutex
	m   map[string]bucket
	now func() time.Time
}

// NewRate returns a limiter of burst events per key, refilled at one event
// per every. maxKeys bounds the table (0: DefaultMaxKeys). A burst below 1
// or an every of 0 or less disables the limiter: Allow always succeeds.
func NewRate(burst int, every time.Duration, maxKeys int) *Rate {
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	return &Rate{burst: float64(burst), every: every, maxKeys: maxKeys, m: make(map[string]bucket), now: time.Now}
}

// PerMinute returns a limiter of n events a minute per key, with a burst of
// n: what a "240/min" flag means.
func PerMinute(n int, maxKeys int) *Rate {
	if n <= 0 {
		return NewRate(0, 0, maxKeys)
	}
	return NewRate(n, time.Minute/time.Duration(n), maxKeys)
}

// Disabled reports whether the limiter lets everything through.
func (r *Rate) Disabled() bool { return r == nil || r.burst < 1 || r.every <= 0 }

// Allow spends one event of key and reports whether it was within the limit.
// A refused event spends nothing.
func (r *Rate) Allow(key string) bool {
	ok, _ := r.Reserve(key)
	return ok
}

// Reserve is Allow that also tells, when refused, how long until key has an
// event to spend again (for Retry-After).
func (r *Rate) Reserve(key string) (ok bool, retry time.Duration) {
	if r.Disabled() {
		return true, 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	b, known := r.m[key]
	if !known {
		if len(r.m) >= r.maxKeys {
			r.evict(now)
		}
		b = bucket{tokens: r.burst, last: now}
	} else {
		b.tokens = r.refill(b, now)
		b.last = now
	}
	if b.tokens < 1 {
		r.m[key] = b
		return false, time.Duration((1 - b.tokens) * float64(r.every))
	}
	b.tokens--
	r.m[key] = b
	return true, 0
}

// refill returns b's tokens at now.
func (r *Rate) refill(b bucket, now time.Time) float64 {
	t := b.tokens + float64(now.Sub(b.last))/float64(r.every)
	if t > r.burst {
		t = r.burst
	}
	return t
}

// Len returns the number of keys remembered.
func (r *Rate) Len() int {
	if r == nil {
		return 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.m)
}

// evict makes room: keys whose bucket is full again are forgotten (they
// would start full anyway); if none is, the older half goes, so a key spray
// costs the sprayer's victims only their history. Called with r.mu held.
func (r *Rate) evict(now time.Time) {
	for k, b := range r.m {
		if r.refill(b, now) >= r.burst {
			delete(r.m, k)
		}
	}
	if len(r.m) < r.maxKeys {
		return
	}
	var sum time.Duration
	for _, b := range r.m {
		sum += now.Sub(b.last)
	}
	mean := sum / time.Duration(len(r.m))
	for k, b := range r.m {
		if now.Sub(b.last) >= mean {
			delete(r.m, k)
		}
	}
	if len(r.m) >= r.maxKeys { // all equally old: drop any half
		n := len(r.m) / 2
		for k := range r.m {
			if n == 0 {
				break
			}
			delete(r.m, k)
			n--
		}
	}
}
