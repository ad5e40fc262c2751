package device

// dedup remembers the last n keys added, to tell a message delivered again
// from a new one. It is a ring of keys with a set over it: bounded memory,
// the oldest key forgotten first. Both grow with use up to n, so a client
// that handles a few messages never pays for the whole window. Not safe
// for concurrent use.
type dedup struct {
	set  map[string]struct{}
	ring []string // the keys in the order added, up to n; then a ring
	n    int
	next int // once the ring is full: the oldest key's slot
}

func newDedup(n int) *dedup {
	return &dedup{set: map[string]struct{}{}, n: n}
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
	if len(d.ring) < d.n {
		d.ring = append(d.ring, k)
	} else {
		delete(d.set, d.ring[d.next])
		d.ring[d.next] = k
		d.next = (d.next + 1) % d.n
	}
	d.set[k] = struct{}{}
}
