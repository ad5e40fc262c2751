package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// The peer subcommand measures a generic XMPP server (Prosody in
// bench/bench-peer.sh) doing the work ccsd's downstream scenario measures:
// one message from one TLS session to another and back. It speaks plain
// RFC 6120/6121 messages, no CCS: pair i is the users PREFIXa<i> and
// PREFIXb<i>; a sends <message type="chat"> to b's full JID, b echoes each
// back, and a round trip is complete when the echo reaches a. Each pair
// keeps at most --window round trips in flight.

// peerConfig is the command line of "ccsbench peer".
type peerConfig struct {
	addr, domain, ca, prefix, password string
	pairs, window, messages, payload   int
	duration                           time.Duration
	serverPID                          int
	json                               bool
}

// peerReport is the summary of a peer run.
type peerReport struct {
	Tool           string  `json:"tool"`
	Scenario       string  `json:"scenario"`
	Machine        machine `json:"machine"`
	Addr           string  `json:"addr"`
	Pairs          int     `json:"pairs"`
	Window         int     `json:"window"`
	Messages       int     `json:"messages"`
	Sent           int64   `json:"sent"`
	RoundTrips     int64   `json:"round_trips"`
	Errors         int64   `json:"stanza_errors"`
	ElapsedSeconds float64 `json:"elapsed_seconds"`
	Complete       bool    `json:"complete"`
	RoundTripsPerS float64 `json:"round_trips_per_sec"`
	Latency        latency `json:"latency_ms"`
	ClientCPU      float64 `json:"client_cpu_seconds"`
	ServerCPU      float64 `json:"server_cpu_seconds"` // of --server-pid; 0 without

	Problems []string `json:"problems"`
	OK       bool     `json:"ok"`
}

// peerPair is one a->b->a pair in flight.
type peerPair struct {
	a, b   *xconn
	sem    chan struct{}
	sentAt []atomic.Int64 // per message of this pair, ns since start
	first  int            // this pair sends first, first+pairs, ...
}

func parsePeer(args []string, stderr io.Writer) (*peerConfig, error) {
	c := &peerConfig{}
	fs := flag.NewFlagSet("ccsbench peer", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.addr, "addr", "127.0.0.1:5223", "the server's client port with direct TLS (loopback only)")
	fs.StringVar(&c.domain, "domain", "localhost", "XMPP domain of the users; also the TLS server name")
	fs.StringVar(&c.ca, "ca", "", "PEM certificate(s) to verify the server's certificate (required)")
	fs.StringVar(&c.prefix, "user-prefix", "peer", "users are PREFIXa1, PREFIXb1, PREFIXa2, ...")
	fs.StringVar(&c.password, "password", "", "the users' password (required)")
	fs.IntVar(&c.pairs, "pairs", 1, "pairs of sessions")
	fs.IntVar(&c.window, "window", 32, "round trips in flight per pair")
	fs.IntVar(&c.messages, "messages", 20000, "round trips in total")
	fs.IntVar(&c.payload, "payload", 64, "bytes of each message's body")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "hard cap on the measured phase")
	fs.BoolVar(&c.json, "json", false, "write the summary as JSON")
	fs.IntVar(&c.serverPID, "server-pid", 0, "the server's process, for its CPU seconds during the run (from /proc)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	switch {
	case c.ca == "" || c.password == "":
		return nil, errors.New("peer: --ca and --password are needed")
	case c.pairs < 1 || c.window < 1 || c.messages < 1 || c.payload < 0 || c.duration <= 0:
		return nil, errors.New("peer: --pairs, --window, --messages and --duration must be positive")
	}
	return c, checkLoopback("--addr", c.addr)
}

// runPeer is "ccsbench peer": it returns the exit code.
func runPeer(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c, err := parsePeer(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintln(stderr, "ccsbench:", err)
		return exitUsage
	}
	r, err := c.run(ctx)
	if err != nil {
		fmt.Fprintln(stderr, "ccsbench peer:", err)
		return exitFail
	}
	if c.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(r)
	} else {
		fmt.Fprintf(stdout, "peer %s: %d pairs, window %d: %d of %d round trips in %.2fs, %.1f/s, latency p50 %.3f p99 %.3f ms, %d errors\n",
			r.Addr, r.Pairs, r.Window, r.RoundTrips, r.Messages, r.ElapsedSeconds, r.RoundTripsPerS, r.Latency.P50, r.Latency.P99, r.Errors)
	}
	if !r.OK {
		return exitFail
	}
	return exitOK
}

// run logs every pair in, then sends and echoes until every round trip
// is complete or --duration.
func (c *peerConfig) run(parent context.Context) (*peerReport, error) {
	tlsConf, err := loadCA(c.ca)
	if err != nil {
		return nil, err
	}
	tlsConf.ServerName = c.domain
	d := loopbackDialer()
	pairs := make([]*peerPair, c.pairs)
	for i := range pairs {
		p := &peerPair{sem: make(chan struct{}, c.window), first: i}
		n := strconv.Itoa(i + 1)
		if p.a, err = dialXMPP(parent, d, c.addr, tlsConf, c.prefix+"a"+n, c.password, c.domain, "peer a"+n, bigReadBuf); err == nil {
			p.b, err = dialXMPP(parent, d, c.addr, tlsConf, c.prefix+"b"+n, c.password, c.domain, "peer b"+n, bigReadBuf)
		}
		if err != nil {
			return nil, fmt.Errorf("login of pair %s: %w", n, err)
		}
		pairs[i] = p
	}
	defer func() {
		for _, p := range pairs {
			p.a.close(2 * time.Second)
			p.b.close(2 * time.Second)
		}
	}()
	return c.measure(parent, pairs), nil
}

// measure is the measured phase of run.
func (c *peerConfig) measure(parent context.Context, pairs []*peerPair) *peerReport {
	ctx, cancel := context.WithTimeout(parent, c.duration)
	defer cancel()
	body := make([]byte, c.payload)
	for i := range body {
		body[i] = 'x'
	}
	var sent, done, stanzaErrs atomic.Int64
	var lastDone atomic.Int64
	lat := make([]atomic.Int64, c.messages)
	start := time.Now()
	cpu0, _ := selfCPU()
	srv0 := c.serverCPU()
	failed := make(chan error, 2*len(pairs))
	ended := func(err error) {
		if err != nil {
			failed <- err
		}
	}
	for _, p := range pairs {
		p.sentAt = make([]atomic.Int64, c.messages)
		var scratch []byte
		p.b.start(func(st *stanza) { // echo every message back to a
			if st.name == "message" && st.typ != "error" {
				scratch = appendChat(scratch[:0], p.a.jid, st.id, body)
				p.b.send(scratch)
			}
		}, ended)
		p.a.start(func(st *stanza) {
			if st.name != "message" {
				return
			}
			if st.typ == "error" {
				stanzaErrs.Add(1)
			}
			seq, err := strconv.Atoi(st.id)
			if err != nil || seq < 0 || seq >= c.messages || seq%len(pairs) != p.first {
				return
			}
			at := int64(time.Since(start))
			lat[seq].Store(at - p.sentAt[seq].Load())
			lastDone.Store(at)
			done.Add(1)
			<-p.sem
		}, ended)
	}
	var wg sync.WaitGroup
	for _, p := range pairs {
		wg.Go(func() {
			var buf []byte
			for seq := p.first; seq < c.messages; seq += len(pairs) {
				select {
				case p.sem <- struct{}{}:
				case <-ctx.Done():
					return
				}
				p.sentAt[seq].Store(int64(time.Since(start)))
				buf = appendChat(buf[:0], p.b.jid, strconv.Itoa(seq), body)
				p.a.send(buf)
				sent.Add(1)
			}
		})
	}
	var problems []string
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
wait:
	for done.Load() < int64(c.messages) {
		select {
		case <-ctx.Done():
			problems = append(problems, fmt.Sprintf("incomplete: %d of %d round trips after %v", done.Load(), c.messages, c.duration))
			break wait
		case err := <-failed:
			problems = append(problems, err.Error())
			cancel()
			break wait
		case <-tick.C:
		}
	}
	cancel()
	wg.Wait()
	cpu1, _ := selfCPU()
	return c.report(sent.Load(), done.Load(), stanzaErrs.Load(), lastDone.Load(), lat, cpu1-cpu0, c.serverCPU()-srv0, problems)
}

// report builds the summary; lat holds the latency (ns) of every round trip
// completed (0 for the others).
func (c *peerConfig) report(sent, done, errs, last int64, lat []atomic.Int64, cpu, srv float64, problems []string) *peerReport {
	var ns []int64
	for i := range lat {
		if v := lat[i].Load(); v > 0 {
			ns = append(ns, v)
		}
	}
	r := &peerReport{
		Tool: "ccsbench", Scenario: "peer", Machine: thisMachine(), Addr: c.addr,
		Pairs: c.pairs, Window: c.window, Messages: c.messages,
		Sent: sent, RoundTrips: done, Errors: errs,
		ElapsedSeconds: time.Duration(last).Seconds(), Latency: summarize(ns), ClientCPU: cpu, ServerCPU: srv,
		Complete: done == int64(c.messages), Problems: problems,
	}
	if errs > 0 {
		r.Problems = append(r.Problems, fmt.Sprintf("%d stanza errors", errs))
	}
	if last > 0 {
		r.RoundTripsPerS = round1(float64(done) / r.ElapsedSeconds)
	}
	if r.Problems == nil {
		r.Problems = []string{}
	}
	r.OK = r.Complete && len(r.Problems) == 0
	return r
}

// serverCPU returns the CPU seconds of --server-pid so far, or 0.
func (c *peerConfig) serverCPU() float64 {
	if c.serverPID == 0 {
		return 0
	}
	v, _ := serverCPU(c.serverPID)
	return v
}

// appendChat appends a chat message to the full JID to with the given id
// and body.
func appendChat(b []byte, to, id string, body []byte) []byte {
	b = append(b, `<message type="chat" to="`...)
	b = appendEscaped(b, to, `<>&"'`)
	b = append(b, `" id="`...)
	b = appendEscaped(b, id, `<>&"'`)
	b = append(b, `"><body>`...)
	b = appendEscaped(b, body, `<>&`)
	return append(b, `</body></message>`...)
}
