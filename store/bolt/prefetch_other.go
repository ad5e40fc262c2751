//go:build !unix

package bolt

import "os"

// heldByOther cannot tell here, so prefetch is skipped (see the unix
// version).
func heldByOther(*os.File) bool { return true }
