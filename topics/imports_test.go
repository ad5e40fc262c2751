package topics

import (
	"go/build"
	"strings"
	"testing"
)

// TestNoHTTP pins the seam of docs/contracts.md: topics holds the subscription
// rules and imports no networking package; the HTTP handler is httpapi's.
func TestNoHTTP(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range pkg.Imports {
		if imp == "net" || strings.HasPrefix(imp, "net/") || strings.HasSuffix(imp, "/httpapi") {
			t.Errorf("topics imports %s", imp)
		}
	}
}
