// Command ccsd is a self-hosted Cloud Connection Server: the XMPP messaging
// hub of GCM/FCM, in one binary with an embedded database.
//
// Usage:
//
//	ccsd serve [flags]                      run the server
//	ccsd sender create [--id ID] [--data DIR] create a sender, print its id and API key
//	ccsd sender list [--data DIR]           list senders
//	ccsd sender revoke [--data DIR] ID      revoke a sender's API key
//	ccsd version                            print the version
//	ccsd help                               print this help
//
// Every flag can also be set with an environment variable CCSD_<FLAG>, the
// flag name in upper snake case (--xmpp-addr is CCSD_XMPP_ADDR); a flag on
// the command line wins over the environment.
//
// "ccsd serve" keeps its state in the data directory (--data, default
// ./ccsd-data): the database ccsd.db, the TLS certificate cert.pem/key.pem
// (self-signed, created on first start) and, while it runs, run.json with the
// process id and the addresses it actually listens on. On the first start of
// an empty data directory it creates a default sender and prints
// {"sender_id": ..., "api_key": ...} as one line on stdout.
//
// The sender subcommands work whether or not a server runs on the data
// directory: they go through the running server's loopback admin endpoint
// (found in run.json) if it answers, else they open the database directly.
//
// This package only parses flags and wires the packages together; the logic
// lives in auth, httpapi, xmpp, fanout and store. The wiring is one type,
// app (app.go), shaped like net/http.Server: newApp builds every part,
// Start binds every port before serving any and writes run.json, Shutdown
// drains and closes in dependency order. serve (serve.go) runs one app
// between them.
package main
