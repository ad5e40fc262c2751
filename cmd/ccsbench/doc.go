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
// minute each way, 100 queued) refuse or replace much of the load. See
// "Large runs" below for the per-address limits.
//
// # Setup (not measured)
//
// A fresh sender is created through the admin endpoint (and deleted at
// the end with its registrations, or revoked by a ccsd too old for
// that), --devices devices check in and register --app for it, each
// device logs in on the device port, and --conns app-server connections
// log in as the sender. The group scenario also creates devices/--group-size groups
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
// queue: like downstream, but the devices never log in, so every accepted
// message stays queued for an offline device; the run ends when every
// message is answered. It fills a store, to measure its disk use per queued
// message or a restart with a large queue (bench/bench-load.sh does both).
// Lift --max-queued-per-registration (0) or queue at most 100 per device.
//
// offline: the queue scenario, then the restart and the drain a phone
// fleet sees after an outage. Once every message is answered, the
// app-server connections close and --restart-cmd runs (sh -c; it must stop
// ccsd and start it again on the same --data directory, and may return at
// once: ccsbench then waits, up to --ready-timeout, for a run.json of a
// new instance whose /readyz answers 200). Every device then logs in (16 at
// a time) and acks what it receives, until every accepted message has
// arrived once. It reports the restart command's time, the time from its
// end to ready, the time for every device to log in again, and the drain:
// from the first login to the last queued copy received, in messages per
// second and ccsd CPU-s per 1000 (the "offline" object of --json). ccsbench
// does not manage ccsd itself; bench/bench-load.sh passes a command that
// stops it with SIGTERM, drops ccsd.db from the page cache and starts it.
// Without --restart-cmd the devices reconnect to the same ccsd.
//
// idle: the sender, the devices' registrations and --conns app-server
// connections are made first; ccsd's memory is read ("before"); then the
// --devices device sessions log in and all are held, idle, for --duration;
// then the memory is read again ("after"), every session still open. It
// reports ccsd's RSS per session, (after - before) / sessions, from VmRSS
// in /proc/PID/status (with --data, as ccsd runs on this machine); when
// the admin endpoint serves Prometheus /metrics, also the Go heap per
// session (go_memstats_heap_alloc_bytes) and goroutines per session
// (go_goroutines), else it says they are unknown. RSS counts what the Go
// runtime holds, garbage of the logins included, so it is an upper bound
// of a session's cost, and only meaningful on a ccsd that has not carried
// a larger load since it started: one that has may reuse or release the
// memory that load left, and the summary then warns. When ccsd also serves Go's pprof on the admin
// endpoint, ccsbench requests /debug/pprof/heap?gc=1 before each sample,
// so that the heap figure is the live heap (heap_after_gc in the JSON);
// otherwise it varies with when ccsd last collected. It also gives
// ccsbench's own RSS per session, to plan how many sessions one ccsbench
// process can hold. The run fails if any session ends during the hold.
//
// login: --conns dialers log devices in for --duration, each login a new
// TCP connection with a full TLS handshake (no session resumption), SASL
// PLAIN and resource bind, then </stream:stream> and close. Dialer i uses
// devices i, i+conns, ... (a device holds one session, so --devices must
// be at least --conns; devices are checked in but not registered). It
// reports logins per second, the latency from TCP connect to the bind
// result, and the CPU time per login of ccsd (from /proc, with --data) and
// of ccsbench. ccsbench spends about as much CPU per login as ccsd (the
// client half of TLS): on a small machine logins per second is a bound of
// the machine, and ccsd's CPU per login is the figure of ccsd alone.
// Logins in progress when --duration ends are counted as "cut", not as
// failures; any other failed login fails the run.
//
// # peer: a generic XMPP server
//
// "ccsbench peer --addr A --ca FILE --password P [--pairs N --window W
// --messages M --duration D --server-pid PID --json]" measures another
// XMPP server (Prosody in bench/bench-peer.sh) doing the work the
// downstream scenario measures: one message from one TLS session to another
// and back. Pair i is the users PREFIXa<i> and PREFIXb<i> (--user-prefix,
// default "peer"), which must exist with password P; a sends
// <message type="chat"> to b's full JID, b echoes it back, and each pair
// keeps at most --window round trips in flight. It reports round trips per
// second, their latency and, with --server-pid, the server's CPU seconds.
// It speaks plain RFC 6120 (direct TLS, SASL PLAIN, bind), no CCS.
//
// # Options
//
// --rate N offers a fixed load of N messages per second, over every sender
// of the run together (downstream, group, upstream): message seq is due at
// start + seq/N, a sender that is early sleeps (one reused timer per
// sender, no goroutine per message), one that is late sends every message
// already due at once. Latency is only meaningful below saturation: run
// with a rate below the maximum the unpaced run reaches. The summary gives
// the offered rate and the achieved one (sent_per_sec: messages sent over
// the time of the last send); if the achieved rate falls short, the
// windows were full: ccsd (or the machine) is saturated at that rate.
// --messages still sets the run's length: N times the seconds wanted. 0
// (the default) sends as fast as the windows allow.
//
// --source-addrs N spreads the client's connections (XMPP and HTTPS) over
// the source addresses 127.0.0.1 to 127.0.0.N (up to 65535: 127.0.255.255),
// round-robin; on Linux every address of 127/8 is local with no
// configuration. One source address has about 28,000 ephemeral ports
// (net.ipv4.ip_local_port_range), and ccsd's per-address limits count
// each address apart, so large runs need several. The server addresses
// must then be IPv4 loopback (or localhost).
//
// --json prints the summary as one JSON object, for every scenario;
// --html FILE also writes a self-contained page (no script, no style
// sheet, no CDN: inline SVG only) with the summary and charts of
// throughput and latency per second (logins and their latency for login).
// The JSON "timeline" holds the same per-second figures: what was sent,
// acked and delivered in [t, t+1) seconds after the start, and the p50/p99
// latency of the acks and copies that arrived in that second. The last
// second is usually partial.
//
// On a terminal, stderr shows one progress line, rewritten once a second
// (counts so far and the rates of the last second); when stderr is not a
// terminal (a pipe, a file, a test) nothing is shown.
//
// # Large runs
//
// A phone checks in, registers and logs in a few times; a load test does
// it thousands of times from one machine, so lift ccsd's per-address
// limits (or spread the run with --source-addrs so that no address meets
// them):
//
//	--checkin-burst 0 --register-burst 0     checkins, register3 per address (20 at once, then 1/s)
//	--max-unauth-per-addr -1                 XMPP connections not yet logged in per address (32)
//	--max-http-conns-per-addr -1             open HTTPS connections per address (256)
//	--downstream-rate 0 --upstream-rate 0 --max-queued-per-registration 0
//
// ccsbench opens at most 16 setup connections at a time, so only the login
// scenario with --conns above 32 per source address meets
// --max-unauth-per-addr. Each session is one open file in ccsd and in
// ccsbench. ccsbench raises its soft open-file limit to the hard one;
// ccsd does the same and keeps --max-conns below it, so for more sessions
// than the hard limit (ulimit -Hn) raise it (systemd LimitNOFILE=). To
// hold more sessions than one ccsbench process may open, run several:
// start all but one with --scenario idle and a long --duration, and when
// they hold their sessions run the last one; its per-session figures are
// the cost of its sessions on top of the others'.
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
// bad flags or addresses. (For idle and login, --duration is the length of
// the run, not a cap.)
//
// ccsbench and ccsd share the machine, so the summary names it (GOOS/GOARCH,
// CPUs, CPU model) and gives the CPU seconds each process used during the
// measured phase (ccsd's only with --data, read from /proc): when the two
// add up to all the CPUs, the figures are a bound of the machine, not of
// ccsd alone. --json prints the same summary as one JSON object.
package main
