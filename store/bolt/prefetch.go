package bolt

import (
	"encoding/binary"
	"os"
)

// When the file was not closed cleanly (a crash, SIGKILL) it has no
// freelist on disk (see syncFreelist), and bbolt rebuilds it at open by
// visiting every page of the tree, in tree order: random reads, so a file
// not in the page cache opens at a fraction of the disk's speed (measured:
// 610 MB, 1,000,000 queued, 13.4 s uncached, 1.2 s cached, and 1.5 s to
// read it sequentially). prefetchForWalk reads such a file sequentially
// first, so the walk finds it cached. A clean file is left alone, and so
// is one another process has open (it has no freelist on disk because it
// is open: Open is about to fail with ErrLocked).

// noFreelistPage is bbolt's meta value for "no freelist on disk".
const noFreelistPage = ^uint64(0)

// needsWalk reports whether bbolt will rebuild the freelist of the file at
// path by walking it: the newer of its two meta pages (by transaction id)
// names no freelist page. Any read problem answers false (bbolt's own Open
// then reports it).
func needsWalk(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	// A meta page: page header (16 bytes), then magic, version, page size,
	// flags (4 each), root bucket (16), freelist page id (8), high-water
	// mark (8), transaction id (8).
	var m0 [72]byte
	if _, err := f.ReadAt(m0[:], 0); err != nil {
		return false
	}
	pageSize := int64(binary.LittleEndian.Uint32(m0[24:]))
	if pageSize < 1024 || pageSize > 1<<16 {
		return false
	}
	var m1 [72]byte
	if _, err := f.ReadAt(m1[:], pageSize); err != nil {
		return false
	}
	newest := m0
	if binary.LittleEndian.Uint64(m1[64:]) > binary.LittleEndian.Uint64(m0[64:]) {
		newest = m1
	}
	return binary.LittleEndian.Uint64(newest[48:]) == noFreelistPage
}

// prefetchForWalk reads the file at path from start to end, discarding
// what it reads, if bbolt will walk it at open (needsWalk) and no other
// process holds it. Errors are ignored: it only warms the page cache.
func prefetchForWalk(path string) {
	if !needsWalk(path) {
		return
	}
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	if heldByOther(f) {
		return
	}
	buf := make([]byte, 1<<20)
	for {
		if _, err := f.Read(buf); err != nil { // io.EOF at the end
			return
		}
	}
}
