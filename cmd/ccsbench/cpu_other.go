//go:build !unix

package main

import "errors"

// selfCPU is not implemented on this system.
func selfCPU() (float64, error) { return 0, errors.New("no getrusage") }
