package device

// dedup remembers the last n keys added, to tell a message delivered again
// from a new one. It is a ring of keys with a set over it: bounded memory,
// the oldest key forgotten first. Not safe for concurrent use.
type dedup struct {
	set  map[string]struct{}
	ring []string
	next int
}

func newDedup(n int) *dedup {
	return &dedup{set: make(map[string]struct{}, n), ring: make([]string, n)}
}

func (d *dedup) has(k string) bool {
	_, ok := d.set[k]
	return ok
}

// add remembers k, forgetting the oldest key if the window is full.
func (d *dedup) add(k string) {
	if d.has(k) {
		return
	}
	if old := d.ring[d.next]; old != "" {
		delete(d.set, old)
	}
	d.ring[d.next] = k
	d.set[k] = struct{}{}
	d.next = (d.next + 1) % len(d.ring)
}
