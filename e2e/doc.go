// Package e2e holds the end-to-end tests of ccsd: each test starts the real
// ccsd binary on random 127.0.0.1 ports with a fresh data directory and
// drives it the way app servers and devices do, over TLS XMPP and HTTPS.
// The binary is built once, with the race detector, by TestMain.
package e2e
