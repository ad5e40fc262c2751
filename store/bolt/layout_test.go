package bolt

import (
	"encoding/binary"
	"os"
	"testing"

	"go.etcd.io/bbolt"

	"github.com/ccsd/ccsd/store"
)

// newestMetaFreelist reads the freelist page id of the newest of bbolt's
// two meta pages straight from the file: page header (16 bytes), then
// magic, version, page size, flags (4 each), the root bucket (16), the
// freelist page id (8), the high-water mark (8), the txid (8).
func newestMetaFreelist(t *testing.T, path string) uint64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pageSize := int(binary.LittleEndian.Uint32(b[16+8:]))
	var best, freelist uint64
	for i := range 2 {
		m := b[i*pageSize+16:]
		if txid := binary.LittleEndian.Uint64(m[48:]); txid >= best {
			best, freelist = txid, binary.LittleEndian.Uint64(m[32:])
		}
	}
	return freelist
}

const noFreelist = ^uint64(0)

// TestFreelistWrittenAtClose: commits keep no freelist on disk (cheap
// commits), Close writes it once so the next Open need not walk the file,
// and the first commit after that Open drops it again. A file left without
// one (a crash) still opens, with every record.
func TestFreelistWrittenAtClose(t *testing.T) {
	db, path := openTest(t, Options{})
	for i := range 50 {
		e := &store.Enqueue{Messages: []store.Message{msg("d1", "r1", string(rune('a'+i%26)))}}
		if err := db.Enqueue(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if got := newestMetaFreelist(t, path); got != noFreelist {
		t.Fatalf("freelist page %d on disk while open, want none (NoFreelistSync)", got)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if got := newestMetaFreelist(t, path); got == noFreelist {
		t.Fatal("no freelist on disk after Close")
	}
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if p, err := db.Pending("d1", 0, 0, 0); err != nil || len(p) != 50 {
		t.Fatalf("Pending after reopen = %d, %v", len(p), err)
	}
	if err := db.Enqueue(ctx, &store.Enqueue{Messages: []store.Message{msg("d1", "r1", "z")}}); err != nil {
		t.Fatal(err)
	}
	if got := newestMetaFreelist(t, path); got != noFreelist {
		t.Fatalf("freelist page %d still on disk after a commit", got)
	}
}

// TestQueuePagesFill: messages appended one commit at a time fill their
// queue's pages (appendFill) instead of leaving them half empty, as
// bbolt's default FillPercent of 0.5 does.
func TestQueuePagesFill(t *testing.T) {
	db, _ := openTest(t, Options{})
	pay := make([]byte, 300)
	for i := range pay {
		pay[i] = 'x'
	}
	for i := range 400 {
		m := msg("d1", "r1", "m")
		m.Payload = pay
		m.Expires = int64(1e12 + i)
		if err := db.Enqueue(ctx, &store.Enqueue{Messages: []store.Message{m}}); err != nil {
			t.Fatal(err)
		}
	}
	err := db.view(func(tx *bbolt.Tx) error {
		for name, b := range map[string]*bbolt.Bucket{
			"queue": tx.Bucket(bucketQueues).Bucket([]byte("d1")), "expiry": tx.Bucket(bucketExpiry),
		} {
			s := b.Stats()
			if fill := float64(s.LeafInuse) / float64(s.LeafAlloc); fill < 0.7 {
				t.Errorf("%s leaf pages %.2f full (%d pages), want >= 0.7", name, fill, s.LeafPageN)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestPrefetchAfterCrash: a file copied while the store is open (what a
// SIGKILL leaves: every commit on disk, no freelist) is one bbolt must
// walk at open, so Open reads it through first; it opens with every
// record, and once closed cleanly it needs no walk.
func TestPrefetchAfterCrash(t *testing.T) {
	db, path := openTest(t, Options{})
	for i := range 20 {
		if err := db.Enqueue(ctx, &store.Enqueue{Messages: []store.Message{msg("d1", "r1", string(rune('a'+i)))}}); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	crashed := path + ".crashed"
	if err := os.WriteFile(crashed, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if !needsWalk(crashed) {
		t.Fatal("a file with no freelist on disk does not need a walk")
	}
	db2, err := Open(crashed, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if p, err := db2.Pending("d1", 0, 0, 0); err != nil || len(p) != 20 {
		t.Fatalf("Pending after the crash = %d, %v", len(p), err)
	}
	if err := db2.Close(); err != nil {
		t.Fatal(err)
	}
	if needsWalk(crashed) {
		t.Fatal("a cleanly closed file needs a walk")
	}
	if needsWalk(path+".absent") || needsWalk(os.DevNull) {
		t.Fatal("needsWalk of a missing or empty file")
	}
}

// TestPrefetchSkipsLockedFile: the file of an open store (no freelist on
// disk, locked) is seen as held, so a second Open does not read it through
// before failing with ErrLocked.
func TestPrefetchSkipsLockedFile(t *testing.T) {
	db, path := openTest(t, Options{})
	if err := db.Enqueue(ctx, &store.Enqueue{Messages: []store.Message{msg("d1", "r1", "a")}}); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if !needsWalk(path) || !heldByOther(f) {
		t.Fatalf("open store's file: needsWalk %v, heldByOther %v; want both", needsWalk(path), heldByOther(f))
	}
	db.Close()
	g, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if heldByOther(g) {
		t.Fatal("a closed store's file is held")
	}
}
