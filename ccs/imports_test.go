package ccs

import (
	"go/build"
	"strings"
	"testing"
)

// TestImportsOnlyStdlib pins the seam of docs/contracts.md: the wire format
// depends on the standard library and internal/limit only, never on
// routing, storage or a transport.
func TestImportsOnlyStdlib(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range pkg.Imports {
		if imp == "github.com/ccsd/ccsd/internal/limit" {
			continue
		}
		if first, _, _ := strings.Cut(imp, "/"); strings.Contains(first, ".") || imp == "net" || strings.HasPrefix(imp, "net/") {
			t.Errorf("ccs imports %s", imp)
		}
	}
}
