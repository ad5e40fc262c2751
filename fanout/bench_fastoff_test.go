package fanout

import "testing"

// BenchmarkDownstreamOnlineFastOff is BenchmarkDownstreamOnline with the
// fast path off: every message queued, read back and deleted.
func BenchmarkDownstreamOnlineFastOff(b *testing.B) {
	benchDownstreamOnline(b, Config{FastPathDelay: -1})
}
