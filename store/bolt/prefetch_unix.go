//go:build unix

package bolt

import (
	"os"
	"syscall"
)

// heldByOther reports whether another open holds f's bbolt lock (a
// running ccsd: its file never has a freelist on disk), so prefetch would
// read the whole file only for Open to fail with ErrLocked. The shared
// lock taken to find out goes with f's close, before bbolt takes its own.
func heldByOther(f *os.File) bool {
	return syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB) != nil
}
