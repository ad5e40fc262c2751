package memstore

import (
	"testing"

	"github.com/ccsd/ccsd/store"
	"github.com/ccsd/ccsd/store/storetest"
)

// TestContract runs the store contract suite against the in-memory
// backend, proving the suite asks nothing bbolt-specific.
func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T, opts store.Options) store.Backend { return New(opts) })
}
