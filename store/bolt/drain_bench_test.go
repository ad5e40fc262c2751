package bolt

import (
	"fmt"
	"sync/atomic"
	"testing"

	"go.etcd.io/bbolt"

	"github.com/ccsd/ccsd/store"
)

// BenchmarkEnqueueAfterDrain: group commits on a file whose freelist is
// large (50,000 messages queued, then acked), the case where a freelist
// written on every commit costs most.
func BenchmarkEnqueueAfterDrain(b *testing.B) {
	db, _ := openTest(b, Options{})
	pay := make([]byte, 300)
	const n = 50000
	for i := 0; i < n; i += 1000 {
		e := &store.Enqueue{}
		for j := range 1000 {
			d := fmt.Sprintf("d%d", (i+j)%100)
			e.Messages = append(e.Messages, store.Message{DeviceID: d, RegID: "r" + d, SenderID: "s1", Payload: pay})
		}
		if err := db.Enqueue(ctx, e); err != nil {
			b.Fatal(err)
		}
	}
	for d := range 100 {
		ms, _ := db.Pending(fmt.Sprintf("d%d", d), 0, 0, 0)
		err := db.update(ctx, func(tx *bbolt.Tx) error {
			for _, m := range ms {
				if _, err := deleteMessage(tx, m.DeviceID, m.Seq); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	var k atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(64)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := db.Enqueue(ctx, benchMessage(k.Add(1))); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	reportBatch(b, db)
}
