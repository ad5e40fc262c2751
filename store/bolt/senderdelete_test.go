package bolt

import (
	"path/filepath"
	"testing"

	"github.com/ccsd/ccsd/store"
	"github.com/ccsd/ccsd/store/storetest"
)

// TestSenderDelete runs the SenderDeleter rules on a real bbolt file and
// checks the indexes afterwards.
func TestSenderDelete(t *testing.T) {
	storetest.RunSenderDelete(t, func(t *testing.T, opts store.Options) store.Backend {
		db, err := Open(filepath.Join(t.TempDir(), "ccsd.db"), Options{Now: opts.Now})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		return db
	}, func(t *testing.T, b store.Backend) {
		db := b.(*DB)
		assertIndexes(t, db)
		assertGroupIndex(t, db)
		assertTopicIndexes(t, db)
	})
}
