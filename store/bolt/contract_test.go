package bolt

import (
	"path/filepath"
	"testing"

	"github.com/ccsd/ccsd/store"
	"github.com/ccsd/ccsd/store/storetest"
)

// TestContract runs the store contract suite against a real bbolt file,
// checking after each test that the indexes agree with the records.
func TestContract(t *testing.T) {
	storetest.RunChecked(t, func(t *testing.T, opts store.Options) store.Backend {
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
