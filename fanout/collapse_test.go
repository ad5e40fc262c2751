package fanout

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/ccsd/ccsd/ccs"
	"github.com/ccsd/ccsd/store"
)

// TestCollapseKeyBoundOfflineAndOnline: an offline device keeps
// MaxCollapseKeys distinct keys (the oldest go); one with a live session
// may hold its window and one rate burst more.
func TestCollapseKeyBoundOfflineAndOnline(t *testing.T) {
	r, db, _, clk := quotaRouter(t, 2, Config{MaxCollapseKeys: 2, DeviceWindow: 1, DownstreamRate: 3})
	send := func(reg string, i int) {
		t.Helper()
		id := strconv.Itoa(i)
		if res := sendJSON(r, "123", `{"to":"`+reg+`","message_id":"`+reg+`-`+id+`","collapse_key":"k`+id+`"}`); res.Nack != nil {
			t.Fatal(res.Nack)
		}
		clk.add(20 * time.Second) // the rate's refill: it is not what is tested
	}
	for i := range 4 {
		send("reg0", i)
	}
	if p, _ := db.Pending("dev0", 0, 0, 0); len(p) != 2 || p[0].MessageID != "reg0-2" || p[1].MessageID != "reg0-3" {
		t.Fatalf("offline: %d queued (%v), want reg0-2, reg0-3", len(p), p)
	}
	c := &fakeConn{id: "dev1"} // acks nothing
	r.OpenDevice(c)
	const bound = 2 + 1 + 3
	for i := range bound + 2 {
		send("reg1", i)
	}
	if n, _ := db.QueueLen("dev1"); n != bound {
		t.Fatalf("online: %d queued, want %d", n, bound)
	}
}

// TestReceiptRefusedAtUpstreamCap: a message asking for a receipt is
// refused SERVICE_UNAVAILABLE (HTTP Unavailable) while the sender's
// upstream queue is at its cap, and stores nothing; one without a receipt,
// and a dry run, still pass.
func TestReceiptRefusedAtUpstreamCap(t *testing.T) {
	r, db, _, _ := quotaRouter(t, 1, Config{MaxUpstreamQueued: 1})
	ctx := context.Background()
	if err := db.PushUpstream(ctx, &store.Upstream{SenderID: "123", MessageID: "u", Payload: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	res := sendJSON(r, "123", `{"to":"reg0","message_id":"r-1","delivery_receipt_requested":true}`)
	if res.Nack == nil || res.Nack.Code != ccs.CodeServiceUnavailable {
		t.Fatalf("receipt at the cap: %+v, want SERVICE_UNAVAILABLE", res.Nack)
	}
	if name, _ := res.Nack.HTTPError(); name != "Unavailable" {
		t.Fatalf("HTTP name %q, want Unavailable", name)
	}
	if n, _ := db.QueueLen("dev0"); n != 0 {
		t.Fatalf("the refused message was stored: %d queued", n)
	}
	for _, body := range []string{
		`{"to":"reg0","message_id":"r-2"}`,
		`{"to":"reg0","message_id":"r-3","delivery_receipt_requested":true,"dry_run":true}`,
		`{"to":"APA91bTESTKEY","message_id":"r-4"}`,
	} {
		if res := sendJSON(r, "123", body); res.Nack != nil {
			t.Fatalf("%s: %v", body, res.Nack)
		}
	}
	if res := sendJSON(r, "123", `{"to":"APA91bTESTKEY","message_id":"r-5","delivery_receipt_requested":true}`); res.Nack == nil || res.Nack.Code != ccs.CodeServiceUnavailable {
		t.Fatalf("group send asking for receipts at the cap: %+v", res.Nack)
	}
	if err := db.AckUpstream(ctx, "123", 1); err != nil {
		t.Fatal(err)
	}
	if res := sendJSON(r, "123", `{"to":"reg0","message_id":"r-6","delivery_receipt_requested":true}`); res.Nack != nil {
		t.Fatalf("after the queue emptied: %v", res.Nack)
	}
}
