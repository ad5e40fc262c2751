package device

import (
	"go/build"
	"strings"
	"testing"
)

// TestStandardLibraryOnly pins the seam of docs/contracts.md: device is
// ccsd's client, written against the protocol, so it imports no package of
// the server (and nothing outside the standard library) and any program
// can use it.
func TestStandardLibraryOnly(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range pkg.Imports {
		if first, _, _ := strings.Cut(imp, "/"); strings.Contains(first, ".") {
			t.Errorf("device imports %s", imp)
		}
	}
}
