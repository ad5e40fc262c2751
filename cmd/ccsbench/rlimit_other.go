//go:build !unix

package main

import "errors"

// raiseFileLimit is not implemented on this system.
func raiseFileLimit() (uint64, error) { return 0, errors.New("no rlimit") }
