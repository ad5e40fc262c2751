package main

import "testing"

// TestMaxConnsFromLimit: the derived --max-conns leaves a reserve below the
// open-file limit: 1/8, at least 256, at most half.
func TestMaxConnsFromLimit(t *testing.T) {
	for soft, want := range map[uint64]int{
		0: 0, 1 << 40: 0, // unknown or unlimited: no limit
		256: 128, 1024: 768, 20000: 17500, 65536: 57344,
	} {
		if got := maxConnsFromLimit(soft); got != want {
			t.Errorf("maxConnsFromLimit(%d) = %d, want %d", soft, got, want)
		}
	}
}

// TestLimitFlags: limit flags take positive values or -1; 0 only for
// --max-conns.
func TestLimitFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--max-unauth-per-addr", "0"}, {"--max-http-conns-per-addr", "-2"},
		{"--login-failures-per-addr", "0"}, {"--max-conns", "-5"}, {"--tls-handshake-timeout", "0s"},
	} {
		if code, _, _ := ccsd(t, append([]string{"serve", "--data", t.TempDir()}, args...)...); code != exitUsage {
			t.Errorf("%v: exit %d, want usage error", args, code)
		}
	}
}
