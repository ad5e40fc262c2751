package bolt

import (
	"bytes"
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

// benchCopy is a 200-byte-data device copy as fanout renders it (the
// queue scenario of ccsbench).
func benchCopy(i int) store.Message {
	m := store.Message{
		DeviceID: "10005275380039011355", RegID: "YWqANNIIpvnL8wtRrGRPvA:APA91br3tvEmQxunHVhffm67SeL1vDRYvSrH0HwJOWT0piR1s",
		SenderID: "480521435420", MessageID: fmt.Sprint("m", i), Expires: 1796162154825,
	}
	m.Payload = []byte(`{"message_id":"` + m.MessageID + `","to":"` + m.RegID + `","from":"` + m.SenderID +
		`","category":"com.ccsbench.app","time_to_live":2419200,"data":{"p":"` + string(bytes.Repeat([]byte("x"), 150)) + `"},"sent":1796162154825}`)
	return m
}

// BenchmarkEncodeMessage: one queued message's value, as EnqueueAsync
// encodes it.
func BenchmarkEncodeMessage(b *testing.B) {
	m := benchCopy(1)
	b.ReportAllocs()
	for b.Loop() {
		encodeMessage(&m)
	}
	b.ReportMetric(float64(len(encodeMessage(&m))), "value-bytes")
}

// BenchmarkDecodeMessage: one queued message read back, as Pending and Ack
// decode it.
func BenchmarkDecodeMessage(b *testing.B) {
	m := benchCopy(1)
	v := encodeMessage(&m)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeMessage(m.DeviceID, 1, v); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPending: a device session's read of a full window (100 queued
// device copies), per message.
func BenchmarkPending(b *testing.B) {
	db, _ := openTest(b, Options{})
	e := &store.Enqueue{}
	for i := range 100 {
		e.Messages = append(e.Messages, benchCopy(i))
	}
	if err := db.Enqueue(ctx, e); err != nil {
		b.Fatal(err)
	}
	dev := e.Messages[0].DeviceID
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += 100 {
		if ms, err := db.Pending(dev, 0, 100, 0); err != nil || len(ms) != 100 {
			b.Fatalf("Pending = %d, %v", len(ms), err)
		}
	}
}

// BenchmarkAckParallel: device acks (the delete of a delivered message
// with its index entries) from many sessions at once, per ack.
func BenchmarkAckParallel(b *testing.B) {
	db, _ := openTest(b, Options{})
	type ref struct {
		dev string
		seq uint64
	}
	refs := make([]ref, 0, b.N)
	for i := 0; i < b.N; i += 1000 {
		e := &store.Enqueue{}
		for j := i; j < min(i+1000, b.N); j++ {
			e.Messages = append(e.Messages, benchCopy(j))
			e.Messages[len(e.Messages)-1].DeviceID = fmt.Sprint("d", j%100)
		}
		if err := db.Enqueue(ctx, e); err != nil {
			b.Fatal(err)
		}
		for _, m := range e.Messages {
			refs = append(refs, ref{m.DeviceID, m.Seq})
		}
	}
	var n atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(64)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r := refs[n.Add(1)-1]
			if _, err := db.Ack(ctx, r.dev, r.seq, nil); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	reportBatch(b, db)
}
