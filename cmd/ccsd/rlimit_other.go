//go:build !unix

package main

import "github.com/rs/zerolog"

// raiseFileLimit does nothing where there is no RLIMIT_NOFILE; 0 means the
// limit is unknown.
func raiseFileLimit(zerolog.Logger) (soft uint64) { return 0 }
