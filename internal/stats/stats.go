// Package stats holds the plain counters that the serving packages keep for
// observability: padded atomic counters and fixed-bucket histograms. They
// cost one atomic add per event (no lock, no allocation), and are read at
// scrape time by package metrics, the only package that knows Prometheus.
// Standard library only; any package may import it.
package stats

import "sync/atomic"

// cacheLine is the padding that keeps two counters bumped by different
// goroutines (say, device acks and app-server acks) from sharing a cache
// line, so that neither slows the other down.
const cacheLine = 64

// Counter is a monotonically increasing count, padded to its own cache
// line. The zero value is ready to use.
type Counter struct {
	n atomic.Uint64
	_ [cacheLine - 8]byte
}

// Inc adds one.
func (c *Counter) Inc() { c.n.Add(1) }

// Add adds n.
func (c *Counter) Add(n uint64) { c.n.Add(n) }

// Load returns the count.
func (c *Counter) Load() uint64 { return c.n.Load() }

// Histogram counts observations of an integer quantity (a batch size, a
// duration in nanoseconds) into fixed buckets chosen at creation. Observe
// is lock-free and allocates nothing; Snapshot copies the counts.
type Histogram struct {
	bounds []uint64 // upper bounds, inclusive, ascending
	counts []atomic.Uint64
	sum    atomic.Uint64
	count  atomic.Uint64
}

// NewHistogram returns a histogram with the given inclusive upper bounds,
// which must ascend; values above the last go to an implicit +Inf bucket.
func NewHistogram(bounds ...uint64) *Histogram {
	for i := 1; i < len(bounds); i++ {
		if bounds[i] <= bounds[i-1] {
			panic("stats: histogram bounds must ascend")
		}
	}
	return &Histogram{bounds: bounds, counts: make([]atomic.Uint64, len(bounds)+1)}
}

// Observe records one value v.
func (h *Histogram) Observe(v uint64) {
	i := 0
	for i < len(h.bounds) && v > h.bounds[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sum.Add(v)
	h.count.Add(1)
}

// HistogramSnapshot is a histogram's state at one moment: Counts[i] is the
// number of values <= Bounds[i] and above the previous bound (not
// cumulative); Counts[len(Bounds)] those above the last bound.
type HistogramSnapshot struct {
	Bounds []uint64
	Counts []uint64
	Sum    uint64
	Count  uint64
}

// Snapshot copies the histogram. Concurrent Observes may land in Count but
// not yet in a bucket (or the other way round): a scrape is a sample.
func (h *Histogram) Snapshot() HistogramSnapshot {
	s := HistogramSnapshot{Bounds: h.bounds, Counts: make([]uint64, len(h.counts))}
	for i := range h.counts {
		s.Counts[i] = h.counts[i].Load()
	}
	s.Sum, s.Count = h.sum.Load(), h.count.Load()
	return s
}
