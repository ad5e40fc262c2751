package memstore

import (
	"testing"

	"github.com/ccsd/ccsd/store"
	"github.com/ccsd/ccsd/store/storetest"
)

// TestSenderDelete runs the SenderDeleter rules on the in-memory backend.
func TestSenderDelete(t *testing.T) {
	storetest.RunSenderDelete(t, func(t *testing.T, opts store.Options) store.Backend { return New(opts) }, nil)
}
