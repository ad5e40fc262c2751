package bolt

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ccsd/ccsd/store"
)

func benchMessage(i int64) *store.Enqueue {
	dev := fmt.Sprintf("d%d", i%100)
	return &store.Enqueue{
		SenderID: "s1", MessageID: fmt.Sprint(i), DedupUntil: time.Now().UnixMilli() + 60000,
		Messages: []store.Message{{
			DeviceID: dev, RegID: "r" + dev, SenderID: "s1", MessageID: fmt.Sprint(i),
			Expires: time.Now().UnixMilli() + 3600000,
			Payload: []byte(`{"message_id":"m","data":{"score":"5x1","time":"15:10"}}`),
		}},
	}
}

func reportBatch(b *testing.B, db *DB) {
	st := db.Stats()
	if st.Commits > 0 {
		b.ReportMetric(float64(st.Ops)/float64(st.Commits), "ops/commit")
	}
}

// BenchmarkEnqueueParallel measures throughput with many concurrent writers
// (64 per GOMAXPROCS, like many app-server connections): group commit shares
// each fsync among them.
func BenchmarkEnqueueParallel(b *testing.B) {
	db, _ := openTest(b, Options{})
	var n atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(64)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := db.Enqueue(ctx, benchMessage(n.Add(1))); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	reportBatch(b, db)
}

// BenchmarkEnqueueSerial measures one writer waiting for each commit: one
// fsync per message, no timer in the way.
func BenchmarkEnqueueSerial(b *testing.B) {
	db, _ := openTest(b, Options{})
	b.ReportAllocs()
	b.ResetTimer()
	for i := range int64(b.N) {
		if err := db.Enqueue(ctx, benchMessage(i)); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	reportBatch(b, db)
}
