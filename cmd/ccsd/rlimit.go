//go:build unix

package main

import (
	"fmt"
	"syscall"

	"github.com/rs/zerolog"
)

// raiseFileLimit raises the process's soft RLIMIT_NOFILE (open files, so
// connections) to its hard limit, logs both, and returns the soft limit in
// force afterwards. Every connection is a file descriptor: a soft limit of
// 1024, still the default of many systems, would refuse the 1025th client
// long before the machine runs out of anything. It never lowers the limit;
// if raising fails it logs why and returns the limit unchanged. 0 means the
// limit could not be read.
func raiseFileLimit(log zerolog.Logger) (soft uint64) {
	return raiseFileLimitWith(log, getNofile, setNofile)
}

func getNofile(l *syscall.Rlimit) error { return syscall.Getrlimit(syscall.RLIMIT_NOFILE, l) }
func setNofile(l *syscall.Rlimit) error { return syscall.Setrlimit(syscall.RLIMIT_NOFILE, l) }

// raiseFileLimitWith is raiseFileLimit with the system calls passed in, so
// a test can make them fail.
func raiseFileLimitWith(log zerolog.Logger, get, set func(*syscall.Rlimit) error) uint64 {
	var lim syscall.Rlimit
	if err := get(&lim); err != nil {
		log.Warn().Err(fmt.Errorf("getrlimit RLIMIT_NOFILE: %w", err)).Msg("open file limit unknown")
		return 0
	}
	before, hard := uint64(lim.Cur), uint64(lim.Max)
	if before < hard {
		want := lim
		want.Cur = want.Max
		if err := set(&want); err != nil {
			// macOS refuses an infinite hard limit as the soft one; the
			// limit that stays is still a working one.
			log.Warn().Err(fmt.Errorf("setrlimit RLIMIT_NOFILE: %w", err)).Uint64("soft", before).Uint64("hard", hard).
				Msg("could not raise the open file limit; it bounds how many connections ccsd can hold")
			return before
		}
		if err := get(&lim); err != nil {
			lim = want // set succeeded: its value is the one in force
		}
	}
	soft := uint64(lim.Cur)
	log.Info().Uint64("soft", soft).Uint64("hard", hard).Uint64("soft_before", before).Msg("open file limit")
	return soft
}
