package bolt

import (
	"testing"
	"time"

	"github.com/ccsd/ccsd/store"
)

// TestSenderRecordCompat: a sender record written before GroupCopies
// existed (it ends after Revoked) reads with the option off, and a new
// record round-trips it; a build that knew only the old fields reads the
// new record's leading fields unchanged.
func TestSenderRecordCompat(t *testing.T) {
	s := store.Sender{ID: "123", KeyHash: []byte("hash"), Created: time.Unix(1700000000, 5), Revoked: true}
	old := encodeSender(&s)
	old = old[:len(old)-1] // the layout before GroupCopies
	got, err := decodeSender(old)
	if err != nil || got.GroupCopies || got.ID != "123" || !got.Revoked || string(got.KeyHash) != "hash" {
		t.Fatalf("old record: %+v, %v", got, err)
	}
	s.GroupCopies = true
	if got, err := decodeSender(encodeSender(&s)); err != nil || !got.GroupCopies || !got.Revoked || !got.Created.Equal(s.Created) {
		t.Fatalf("new record: %+v, %v", got, err)
	}
	d := newDec(encodeSender(&s))
	if id, _, _, revoked := d.str(), d.bytes(), d.time(), d.boolean(); d.err != nil || id != "123" || !revoked {
		t.Fatalf("old reader of a new record: %q %v %v", id, revoked, d.err)
	}
}
