package stats

import (
	"sync"
	"testing"
)

func TestHistogramBuckets(t *testing.T) {
	h := NewHistogram(1, 10, 100)
	for _, v := range []uint64{0, 1, 2, 10, 11, 100, 101, 5000} {
		h.Observe(v)
	}
	s := h.Snapshot()
	want := []uint64{2, 2, 2, 2} // <=1: 0,1; <=10: 2,10; <=100: 11,100; +Inf: 101,5000
	for i := range want {
		if s.Counts[i] != want[i] {
			t.Fatalf("bucket %d: got %d, want %d (all %v)", i, s.Counts[i], want[i], s.Counts)
		}
	}
	if s.Count != 8 || s.Sum != 0+1+2+10+11+100+101+5000 {
		t.Fatalf("count %d sum %d", s.Count, s.Sum)
	}
}

func TestCounterConcurrent(t *testing.T) {
	var c Counter
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 1000 {
				c.Inc()
			}
		}()
	}
	wg.Wait()
	c.Add(5)
	if got := c.Load(); got != 4005 {
		t.Fatalf("got %d, want 4005", got)
	}
}

func TestNewHistogramRejectsUnsortedBounds(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic for descending bounds")
		}
	}()
	NewHistogram(10, 5)
}

// The hot path bumps these on every message: they must not allocate.
func TestNoAllocations(t *testing.T) {
	var c Counter
	h := NewHistogram(1, 10, 100)
	if n := testing.AllocsPerRun(1000, func() { c.Inc(); c.Add(2); h.Observe(42) }); n != 0 {
		t.Fatalf("%v allocations per increment", n)
	}
}

func BenchmarkCounterInc(b *testing.B) {
	var c Counter
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c.Inc()
		}
	})
}

func BenchmarkHistogramObserve(b *testing.B) {
	h := NewHistogram(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		h.Observe(uint64(i & 1023))
	}
}
