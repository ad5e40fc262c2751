package limit

import "sync"

// Count bounds concurrent use per key, e.g. open connections per source
// address: Acquire takes a slot, Release gives it back. Its table holds
// only keys in use, so it is bounded by what is in use. Safe for concurrent
// use; a nil *Count or a max of 0 or less allows everything.
type Count struct {
	max int
	mu  sync.Mutex
	m   map[string]int
}

// NewCount returns a Count of at most max slots per key.
func NewCount(max int) *Count { return &Count{max: max, m: make(map[string]int)} }

// Acquire takes a slot of key and reports whether one was free. Every
// successful Acquire must be paired with one Release.
func (c *Count) Acquire(key string) bool {
	if c == nil || c.max <= 0 {
		return true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m[key] >= c.max {
		return false
	}
	c.m[key]++
	return true
}

// Release gives back a slot taken by Acquire.
func (c *Count) Release(key string) {
	if c == nil || c.max <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := c.m[key] - 1; n > 0 {
		c.m[key] = n
	} else {
		delete(c.m, key)
	}
}

// InUse returns the slots key holds.
func (c *Count) InUse(key string) int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[key]
}
