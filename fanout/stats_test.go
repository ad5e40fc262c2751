package fanout

import (
	"reflect"
	"testing"

	"github.com/ccsd/ccsd/ccs"
)

func nackCount(s Stats, p Peer, code ccs.Code) uint64 {
	for i, c := range NackCodes {
		if c == code {
			return s.Nacks[p][i]
		}
	}
	return 0
}

// TestStatsCountEachStep: one message with a receipt, app server -> device
// -> ack -> receipt -> app-server ack, one device upstream message, one
// nack and one bounce each way, one HTTP send: each count moves by exactly
// what happened.
func TestStatsCountEachStep(t *testing.T) {
	r, hs, _ := streamRouter(t, 1, Config{})
	a, ac := openApp(t, r)
	defer a.Closed()
	a.Message("", []byte(`{"to":"reg0","message_id":"m-1","delivery_receipt_requested":true}`))
	waitSent(t, ac, "m-1")
	c := &fakeConn{id: "dev0"}
	d := r.OpenDevice(c)
	defer d.Closed()
	waitSent(t, c, "m-1")
	devAck(d, "m-1")
	devAck(d, "m-1") // a duplicate: matches nothing, counts nothing
	waitSent(t, ac, "m-1", "dr2:m-1")
	a.Message("", []byte(`{"message_type":"ack","message_id":"dr2:m-1","to":"gcm.googleapis.com"}`))
	waitFor(t, "the receipt acked", func() bool { return len(hs.upstreamIDs(t)) == 0 })

	d.Message("", upstreamMsg(1))
	waitSent(t, c, "m-1", "u-1")
	waitSent(t, ac, "m-1", "dr2:m-1", "u-1")
	a.Message("", []byte(`{"message_type":"ack","message_id":"u-1","to":"reg0"}`))
	waitFor(t, "the upstream message acked", func() bool { return len(hs.upstreamIDs(t)) == 0 })

	a.Message("", []byte(`{"to":"nobody","message_id":"m-2"}`))
	waitSent(t, ac, "m-1", "dr2:m-1", "u-1", "m-2")
	d.Message("", []byte(`{"message_type":"bogus","message_id":"x-1"}`))
	waitSent(t, c, "m-1", "u-1", "x-1")
	a.Message("st", []byte(`{"to":`))
	d.Message("st", []byte(`not json`))
	if res := sendJSON(r, "123", `{"to":"reg0","message_id":"h-1"}`); res.Nack != nil {
		t.Fatal(res.Nack)
	}
	if res := sendJSON(r, "123", `{"to":"nobody","message_id":"h-2"}`); res.Nack == nil {
		t.Fatal("h-2 accepted")
	}

	waitFor(t, "h-1 delivered", func() bool { return r.Stats().Delivered == 2 })
	s := r.Stats()
	want := Stats{
		DownstreamXMPP: 1, DownstreamHTTP: 1, Delivered: 2, DeviceAcks: 1,
		UpstreamAccepted: 1, UpstreamDelivered: 2, UpstreamAcks: 2, Receipts: 1,
		// h-1 went to the online device at once; not acked, it was
		// written before Send returned.
		FastSent: 1, FastWritten: 1,
	}
	got := s
	got.Nacks, got.Bounces = want.Nacks, want.Bounces
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("stats\n got %+v\nwant %+v", got, want)
	}
	if n := nackCount(s, ToAppServer, ccs.CodeBadRegistration); n != 2 {
		t.Fatalf("%d BAD_REGISTRATION nacks to app servers, want 2 (XMPP and HTTP)", n)
	}
	if n := nackCount(s, ToDevice, ccs.CodeInvalidJSON); n != 1 {
		t.Fatalf("%d INVALID_JSON nacks to devices, want 1", n)
	}
	var all uint64
	for p := range s.Nacks {
		for _, n := range s.Nacks[p] {
			all += n
		}
	}
	if all != 3 {
		t.Fatalf("%d nacks in all, want 3: %v", all, s.Nacks)
	}
	if s.Bounces != [numPeers]uint64{1, 1} {
		t.Fatalf("bounces %v, want one to each peer", s.Bounces)
	}
}

// TestStatsRateRefusals: a registration over its downstream and upstream
// rates is refused, and each refusal is counted under its limit.
func TestStatsRateRefusals(t *testing.T) {
	r, _, _ := streamRouter(t, 1, Config{DownstreamRate: 1, UpstreamRate: 1})
	for i := range 3 {
		sendJSON(r, "123", string(downMsg(i)))
	}
	c := &fakeConn{id: "dev0"}
	d := r.OpenDevice(c)
	defer d.Closed()
	d.Message("", upstreamMsg(1))
	d.Message("", upstreamMsg(2))
	waitFor(t, "both upstream answered", func() bool { return r.Stats().UpstreamRateRefused == 1 && r.Stats().UpstreamAccepted == 1 })
	s := r.Stats()
	if s.DownstreamRateRefused != 2 || s.DownstreamHTTP != 1 || s.UpstreamQueueFull != 0 {
		t.Fatalf("stats %+v: want 2 downstream refusals, 1 accepted", s)
	}
	if n := nackCount(s, ToAppServer, ccs.CodeDeviceMessageRateExceeded); n != 2 {
		t.Fatalf("%d rate nacks to the app server, want 2", n)
	}
}

// TestCountersDoNotAllocate: the increments on the message path allocate
// nothing (they are padded atomics resolved at New).
func TestCountersDoNotAllocate(t *testing.T) {
	c := newCounters()
	n := &ccs.Nack{Code: ccs.CodeServiceUnavailable}
	allocs := testing.AllocsPerRun(1000, func() {
		c.downXMPP.Inc()
		c.delivered.Add(3)
		c.deviceAcks.Inc()
		c.nack(ToDevice, n)
		c.bounces[ToAppServer].Inc()
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per message's increments", allocs)
	}
}

func BenchmarkCounters(b *testing.B) {
	c := newCounters()
	n := &ccs.Nack{Code: ccs.CodeDeviceMessageRateExceeded}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c.delivered.Inc()
			c.deviceAcks.Inc()
			c.nack(ToAppServer, n)
		}
	})
}
