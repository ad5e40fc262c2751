// Command ccsbench is the load tool of ccsd: it measures a ccsd that is
// already running on this machine, over the same TLS XMPP and HTTPS a real
// app server and real devices use.
//
// Usage:
//
//	ccsbench --data DIR [flags]
//	ccsbench --xmpp-addr A --device-addr A --http-addr A --admin-addr A --ca FILE [flags]
//
// With --data, the addresses come from DIR/run.json (written by "ccsd
// serve" once it listens) and the TLS certificate is verified against
// DIR/cert.pem. Every address must be loopback (127.0.0.1, ::1 or
// localhost), and every connection is checked again at connect time: the
// tool refuses to load another machine. Every loop is bounded: --messages in
// total, --duration for the measured phase, --setup-timeout for the setup.
//
// A load test sends far more to each registration than a phone would:
// start the server with --downstream-rate 0 --upstream-rate 0
// --max-queued-per-registration 0, or its per-registration limits (240 a
// minute each way, 100 queued) refuse or replace much of the load.
//
// # Setup (not measured)
//
// A fresh sender is created through the admin endpoint (and revoked at the
// end), --devices devices check in and register --app for it, each device
// logs in on the device port, and --conns app-server connections log in as
// the sender. The group scenario also creates devices/--group-size groups
// of --group-size registrations (one group of every device when there are
// fewer devices than --group-size).
//
// # Scenarios
//
// downstream (default): the app-server connections send --messages
// messages, round-robin over the registrations, each connection keeping at
// most --window unanswered (CCS's limit is 100; ccsd nacks the 101st with
// SERVICE_UNAVAILABLE). Every device acks every message at once.
//
// group: the same, to the groups' notification_keys; every message is one
// copy per member.
//
// upstream: every device sends its share of --messages upstream messages
// to SENDER@gcm.googleapis.com with category --app, keeping at most
// --window unanswered per device; the app-server connections ack each one.
//
// # Reading the figures
//
// Time starts when the first message is queued. "accepted" is the messages
// ccsd acked (to the app servers, or to the devices for upstream): ccsd
// acks once the message is durably stored, so accepted/s is the accept
// throughput. "delivered" is the distinct copies that reached their
// recipient (devices, or app servers for upstream): delivered/s is the
// end-to-end throughput. Each rate is the count divided by the time of the
// last such event. Latencies run from the moment ccsbench queued the
// message for writing (so they include ccsbench's own write batching) to
// the ack, and to the first copy's arrival; p50/p90/p99/max in
// milliseconds. For group, accepted/s is group messages per second and
// delivered/s is device copies per second.
//
// The checks: every message answered, no nack (nacks are counted by code),
// no stanza error, every copy of every accepted message received
// ("missing"), no copy at the wrong recipient or with an unknown id
// ("unexpected"). Delivery is at-least-once, so extra copies are reported
// as "duplicates" but fail nothing. The exit code is 0 when every check
// passed, 1 when one failed or the run was cut short by --duration, 2 for
// bad flags or addresses.
//
// ccsbench and ccsd share the machine, so the summary names it (GOOS/GOARCH,
// CPUs, CPU model) and gives the CPU seconds each process used during the
// measured phase (ccsd's only with --data, read from /proc): when the two
// add up to all the CPUs, the figures are a bound of the machine, not of
// ccsd alone. --json prints the same summary as one JSON object.
package main
