package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Message states, per sequence number.
const (
	stUnsent int32 = iota
	stSent
	stAcked
	stNacked
)

// device is one checked-in device with its registration and session.
type device struct {
	idx        int
	id, token  string
	reg        string
	group, pos int // its device group and position in it; -1, 0 if none
	x          *xconn
	sem        chan struct{} // upstream window
	scratch    []byte        // reader goroutine only
}

// appConn is one app-server connection.
type appConn struct {
	idx     int
	x       *xconn
	sem     chan struct{} // downstream window
	scratch []byte        // reader goroutine only
}

// devGroup is one device group created for the run.
type devGroup struct {
	name, key string
	members   []int // device indexes
}

// bench is one run: its setup and what it measured.
type bench struct {
	cfg     *config
	log     io.Writer
	tls     *tls.Config
	pool    *dialPool
	live    *live // the progress line on a terminal
	api     *httpAPI
	sender  string
	apiKey  string
	devices []*device
	apps    []*appConn
	groups  []devGroup
	copies  int // copies expected per message: 1, or the group size

	n          int
	suffix     []byte                  // JSON after the message_id value: ","data":{...}}
	prefix     func(seq int) []byte    // JSON up to the message_id value
	idChar     byte                    // 'm' downstream/group, 'u' upstream
	start      time.Time               // the measured phase's time origin
	state      []atomic.Int32          // per sequence number
	sentAt     []atomic.Int64          // ns since start
	ackAt      []atomic.Int64          // ns since start
	counts     []atomic.Int32          // per seq*copies+pos: copies received
	firstAt    []atomic.Int64          // per seq*copies+pos: first receipt
	abort      context.CancelCauseFunc // ends the measured phase on a failure
	deviceEnds atomic.Int64            // device streams that ended (idle), our own closes excluded

	answered, acked, nacked, expected, unique      atomic.Int64
	dups, unexpected, dupAnswers, stanzaErrors     atomic.Int64
	draining, receipts, groupSuccess, groupFailure atomic.Int64
	otherStanzas                                   atomic.Int64

	mu        sync.Mutex
	nacks     map[string]int64
	errs      []string
	dupDelays []int64 // ns from a copy's first arrival to a duplicate
}

// ccsJSON holds the fields ccsbench reads from any CCS JSON payload.
type ccsJSON struct {
	MessageType     string `json:"message_type"`
	MessageID       string `json:"message_id"`
	From            string `json:"from"`
	To              string `json:"to"`
	Category        string `json:"category"`
	Error           string `json:"error"`
	ControlType     string `json:"control_type"`
	NotificationKey string `json:"notification_key"`
	Success         *int64 `json:"success"`
	Failure         *int64 `json:"failure"`
}

func (b *bench) logf(format string, args ...any) {
	b.live.logf("ccsbench: "+format+"\n", args...)
}

// fail records an error; during the measured phase it also ends it.
func (b *bench) fail(err error) {
	b.mu.Lock()
	if len(b.errs) < 20 {
		b.errs = append(b.errs, err.Error())
	}
	abort := b.abort
	b.mu.Unlock()
	if abort != nil {
		abort(err)
	}
}

func (b *bench) now() int64 { return int64(time.Since(b.start)) }

// execute sets up, measures and tears down; the report is nil only when
// setup failed before anything was measured.
func execute(ctx context.Context, cfg *config, tlsConf *tls.Config, log io.Writer) (*report, error) {
	b := &bench{cfg: cfg, log: log, tls: tlsConf, pool: newDialPool(cfg.sourceAddrs), live: newLive(log), nacks: map[string]int64{}}
	b.api = newHTTPAPI(cfg.httpAddr, cfg.adminAddr, tlsConf, b.pool, 16)
	defer b.api.close()
	rep := newReport(cfg)
	defer b.teardown()
	switch cfg.scenario {
	case scenarioIdle:
		return b.runIdle(ctx, rep)
	case scenarioLogin:
		return b.runLogin(ctx, rep)
	}

	setupStart := time.Now()
	sctx, cancel := context.WithTimeout(ctx, cfg.setupTimeout)
	err := b.setup(sctx)
	cancel()
	rep.SetupSeconds = time.Since(setupStart).Seconds()
	if err != nil {
		return nil, setupError(err)
	}
	b.logf("setup done in %.2fs: sender %s, %d devices, %d groups, %d app-server connections",
		rep.SetupSeconds, b.sender, len(b.devices), len(b.groups), len(b.apps))

	probe := b.startProbe(rep)
	b.measure(ctx)
	b.logf("measured phase done")
	probe.stop(rep)
	if cfg.scenario == scenarioOffline {
		b.offline(ctx, rep) // offline.go: restart, reconnect, drain
	}
	b.fill(rep)
	return rep, nil
}

// cpuProbe holds the CPU counters read when a measured phase started.
type cpuProbe struct {
	b                      *bench
	self, srv, mach        float64
	selfErr, srvErr, mcErr error
}

// startProbe reads the CPU counters of ccsbench, ccsd and the machine.
func (b *bench) startProbe(rep *report) *cpuProbe {
	rep.Machine.LoadAvg = loadAvg()
	p := &cpuProbe{b: b}
	p.self, p.selfErr = selfCPU()
	p.srv, p.srvErr = serverCPU(b.cfg.pid)
	p.mach, p.mcErr = machineBusy()
	return p
}

// stop fills rep's CPU seconds with what each used since startProbe.
func (p *cpuProbe) stop(rep *report) {
	if cpu1, err := selfCPU(); err == nil && p.selfErr == nil {
		rep.ClientCPUSeconds = cpu1 - p.self
	}
	if p.srvErr == nil {
		if srv1, err := serverCPU(p.b.cfg.pid); err == nil {
			v := srv1 - p.srv
			rep.ServerCPUSeconds = &v
		}
	}
	if p.mcErr == nil {
		if mach1, err := machineBusy(); err == nil {
			v := mach1 - p.mach
			rep.MachineCPUSeconds = &v
			if rep.ServerCPUSeconds != nil {
				o := max(0, v-rep.ClientCPUSeconds-*rep.ServerCPUSeconds)
				rep.OtherCPUSeconds = &o
			}
		}
	}
}

// setup creates the sender, the devices and their registrations, the
// groups, and logs every connection in.
func (b *bench) setup(ctx context.Context) error {
	if err := b.setupRegs(ctx, true); err != nil {
		return err
	}
	if b.cfg.scenario == scenarioQueue || b.cfg.scenario == scenarioOffline {
		// The devices stay offline: every accepted message stays queued.
		return b.connectApps(ctx)
	}
	if err := b.connectDevices(ctx); err != nil {
		return err
	}
	return b.connectApps(ctx)
}

// setupRegs checks the server's pid, creates the sender and the devices
// (with their registrations when register is true), and the groups of the
// group scenario.
func (b *bench) setupRegs(ctx context.Context, register bool) error {
	cfg := b.cfg
	if cfg.pid != 0 {
		// run.json may be stale: only trust its pid (for the server's CPU
		// time) if the admin endpoint reports the same instance.
		inst, err := b.api.healthz(ctx)
		if err != nil || inst != cfg.instance {
			cfg.pid = 0
		}
	}
	var err error
	b.sender, b.apiKey, err = b.api.createSender(ctx)
	if err != nil {
		return err
	}
	b.devices = make([]*device, cfg.devices)
	var made atomic.Int64
	stopLive := b.live.every(func() string {
		return fmt.Sprintf("setup: %d of %d devices checked in", made.Load(), cfg.devices)
	})
	defer stopLive()
	if err := parallel(ctx, cfg.devices, 16, func(ctx context.Context, i int) error {
		dev, err := b.api.checkin(ctx)
		if err != nil {
			return err
		}
		var reg string
		if register {
			if reg, err = b.api.register(ctx, dev, b.sender, cfg.app); err != nil {
				return err
			}
		}
		st := dev.State()
		id, token := st.AndroidID, st.SecurityToken
		b.devices[i] = &device{idx: i, id: id, token: token, reg: reg, group: -1, sem: make(chan struct{}, cfg.window)}
		made.Add(1)
		return nil
	}); err != nil {
		return err
	}
	b.copies = 1
	if cfg.scenario == scenarioQueue {
		b.copies = 0 // no device is online: no copy is expected
	}
	if cfg.scenario == scenarioGroup {
		return b.setupGroups(ctx)
	}
	return nil
}

// setupGroups creates devices/--group-size groups of --group-size
// registrations.
func (b *bench) setupGroups(ctx context.Context) error {
	cfg := b.cfg
	size := min(cfg.groupSize, cfg.devices)
	b.copies = size
	b.groups = make([]devGroup, cfg.devices/size)
	return parallel(ctx, len(b.groups), 8, func(ctx context.Context, g int) error {
		grp := devGroup{name: fmt.Sprintf("ccsbench-%d", g)}
		regs := make([]string, 0, size)
		for p := 0; p < size; p++ {
			d := b.devices[g*size+p]
			d.group, d.pos = g, p
			grp.members = append(grp.members, d.idx)
			regs = append(regs, d.reg)
		}
		key, err := b.api.createGroup(ctx, b.sender, b.apiKey, grp.name, regs)
		if err != nil {
			return err
		}
		grp.key = key
		b.groups[g] = grp
		return nil
	})
}

// connectDevices logs every device in on the device port.
func (b *bench) connectDevices(ctx context.Context) error {
	cfg := b.cfg
	var done atomic.Int64
	stopLive := b.live.every(func() string {
		return fmt.Sprintf("setup: %d of %d device sessions logged in", done.Load(), cfg.devices)
	})
	defer stopLive()
	return parallel(ctx, cfg.devices, 16, func(ctx context.Context, i int) error {
		d := b.devices[i]
		x, err := dialXMPP(ctx, b.pool.pick(), cfg.deviceAddr, b.tls, d.id, d.token, cfg.domain, "device "+strconv.Itoa(i), b.deviceBuf())
		if err != nil {
			return err
		}
		d.x = x
		done.Add(1)
		return nil
	})
}

// deviceBuf returns the read buffer size of a device session: small for
// the idle scenario, whose sessions only wait.
func (b *bench) deviceBuf() int {
	if b.cfg.scenario == scenarioIdle {
		return smallReadBuf
	}
	return bigReadBuf
}

// connectApps logs --conns app-server connections in as the run's sender.
func (b *bench) connectApps(ctx context.Context) error {
	cfg := b.cfg
	b.apps = make([]*appConn, cfg.conns)
	return parallel(ctx, cfg.conns, 16, func(ctx context.Context, i int) error {
		x, err := dialXMPP(ctx, b.pool.pick(), cfg.xmppAddr, b.tls, b.sender+"@"+cfg.domain, b.apiKey, cfg.domain, "app-server "+strconv.Itoa(i), bigReadBuf)
		if err != nil {
			return err
		}
		b.apps[i] = &appConn{idx: i, x: x, sem: make(chan struct{}, cfg.window)}
		return nil
	})
}

// parallel runs f(0..n-1) on at most workers goroutines and returns the
// first error; after an error no new call starts.
func parallel(ctx context.Context, n, workers int, f func(context.Context, int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(n, workers) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := f(ctx, i); err != nil {
					cancel(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return ctx.Err()
}

// teardown ends every stream politely, in parallel, and deletes the
// run's sender with its registrations.
func (b *bench) teardown() {
	var wg sync.WaitGroup
	for _, d := range b.devices {
		if d != nil && d.x != nil {
			wg.Go(func() { d.x.close(2 * time.Second) })
		}
	}
	for _, a := range b.apps {
		if a != nil && a.x != nil {
			wg.Go(func() { a.x.close(2 * time.Second) })
		}
	}
	wg.Wait()
	if b.sender != "" {
		// Deleting unregisters every device of the run in one write: give
		// a large run's time to it.
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if err := b.api.deleteSender(ctx, b.sender); err != nil {
			b.logf("warning: deleting the run's sender %s: %v", b.sender, err)
		}
	}
}

// jsonString returns s as a JSON string literal.
func jsonString(s string) []byte {
	q, _ := json.Marshal(s)
	return q
}

// appendJSONString appends s as a JSON string literal; the message ids
// ccsbench makes need no escaping, anything else goes through json.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			return append(b, jsonString(s)...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// msgID returns the message_id of sequence number seq.
func (b *bench) appendID(dst []byte, seq int) []byte {
	dst = append(dst, b.idChar)
	return strconv.AppendInt(dst, int64(seq), 10)
}

// seqOf parses a message_id made by appendID; -1 if it is not one.
func (b *bench) seqOf(id string) int {
	if len(id) < 2 || id[0] != b.idChar {
		return -1
	}
	n, err := strconv.Atoi(id[1:])
	if err != nil || n < 0 || n >= b.n || strconv.Itoa(n) != id[1:] {
		return -1
	}
	return n
}

// measure runs the scenario until every message is answered and every
// accepted copy received, or --duration, or a failure.
func (b *bench) measure(parent context.Context) {
	cfg := b.cfg
	b.prepare()

	ctx, cancel := context.WithTimeout(parent, cfg.duration)
	defer cancel()
	ctx, abort := context.WithCancelCause(ctx)
	defer abort(nil)
	b.mu.Lock()
	b.abort = abort
	b.mu.Unlock()

	b.start = time.Now()
	for _, d := range b.devices {
		if d.x != nil { // nil in the queue scenario: never logged in
			d.x.start(func(st *stanza) { b.onDevice(d, st) }, b.ended)
		}
	}
	for _, a := range b.apps {
		a.x.start(func(st *stanza) { b.onApp(a, st) }, b.ended)
	}
	var senders sync.WaitGroup
	if cfg.scenario == scenarioUpstream {
		for _, d := range b.devices {
			senders.Go(func() { b.sendLoop(ctx, d.x, d.sem, d.idx, len(b.devices)) })
		}
	} else {
		for _, a := range b.apps {
			senders.Go(func() { b.sendLoop(ctx, a.x, a.sem, a.idx, len(b.apps)) })
		}
	}

	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	stopLive := b.live.every(b.progressLine())
	defer stopLive()
	for !b.done() {
		select {
		case <-ctx.Done():
			if cause := context.Cause(ctx); errors.Is(cause, context.DeadlineExceeded) {
				b.logf("--duration %v reached before the run completed", cfg.duration)
			} else if !errors.Is(cause, context.Canceled) || parent.Err() != nil {
				b.logf("run stopped: %v", cause)
			}
			abort(nil)
			senders.Wait()
			return
		case <-tick.C:
		}
	}
	abort(nil)
	senders.Wait()
}

// prepare allocates the per-message state and builds the message text of
// the scenario, before the clock starts.
func (b *bench) prepare() {
	cfg := b.cfg
	b.n = cfg.messages
	b.state = make([]atomic.Int32, b.n)
	b.sentAt = make([]atomic.Int64, b.n)
	b.ackAt = make([]atomic.Int64, b.n)
	b.counts = make([]atomic.Int32, b.n*b.copies)
	b.firstAt = make([]atomic.Int64, b.n*b.copies)
	b.suffix = append([]byte(`","data":{"p":`), jsonString(strings.Repeat("x", cfg.payload))...)
	b.suffix = append(b.suffix, "}}"...)

	switch cfg.scenario {
	case scenarioDownstream, scenarioQueue, scenarioOffline:
		b.idChar = 'm'
		prefixes := make([][]byte, len(b.devices))
		for i, d := range b.devices {
			prefixes[i] = []byte(`{"to":` + string(jsonString(d.reg)) + `,"message_id":"`)
		}
		b.prefix = func(seq int) []byte { return prefixes[seq%len(prefixes)] }
	case scenarioGroup:
		b.idChar = 'm'
		prefixes := make([][]byte, len(b.groups))
		for i, g := range b.groups {
			prefixes[i] = []byte(`{"to":` + string(jsonString(g.key)) + `,"message_id":"`)
		}
		b.prefix = func(seq int) []byte { return prefixes[seq%len(prefixes)] }
	case scenarioUpstream:
		b.idChar = 'u'
		p := []byte(`{"to":` + string(jsonString(b.sender+"@"+cfg.domain)) + `,"category":` + string(jsonString(cfg.app)) + `,"message_id":"`)
		b.prefix = func(int) []byte { return p }
	}
}

// done reports whether every message is answered and every accepted copy
// received.
func (b *bench) done() bool {
	return b.answered.Load() == int64(b.n) && b.unique.Load() >= b.expected.Load()
}

// ended is called when a stream ends; err is nil for our own close.
func (b *bench) ended(err error) {
	if err != nil {
		b.fail(err)
	}
}

// sendLoop sends sequence numbers first, first+step, ... on x, keeping at
// most cap(sem) unanswered; with --rate, no message before its due time.
func (b *bench) sendLoop(ctx context.Context, x *xconn, sem chan struct{}, first, step int) {
	var js, st []byte
	pace := newPacer(b.start, b.cfg.rate)
	defer pace.stop()
	for seq := first; seq < b.n; seq += step {
		if !pace.wait(ctx, seq) {
			return
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		js = append(js[:0], b.prefix(seq)...)
		js = b.appendID(js, seq)
		js = append(js, b.suffix...)
		b.sentAt[seq].Store(b.now())
		b.state[seq].Store(stSent)
		st = appendGCM(st[:0], "", js)
		x.send(st)
	}
}

// answer records the ack or nack (code != "") of seq and opens the window.
func (b *bench) answer(sem chan struct{}, seq int, code string) bool {
	to := stAcked
	if code != "" {
		to = stNacked
	}
	if seq < 0 || !b.state[seq].CompareAndSwap(stSent, to) {
		b.dupAnswers.Add(1)
		return false
	}
	b.ackAt[seq].Store(b.now())
	select {
	case <-sem:
	default:
	}
	if code != "" {
		b.nacked.Add(1)
		b.mu.Lock()
		b.nacks[code]++
		b.mu.Unlock()
	} else {
		b.acked.Add(1)
	}
	b.answered.Add(1)
	return true
}

// received records one copy of seq at position pos of its recipients.
func (b *bench) received(seq, pos int, ok bool) {
	if seq < 0 || !ok {
		b.unexpected.Add(1)
		return
	}
	i := seq*b.copies + pos
	if b.counts[i].Add(1) == 1 {
		b.firstAt[i].Store(b.now())
		b.unique.Add(1)
	} else {
		b.dups.Add(1)
		delay := b.now() - b.firstAt[i].Load()
		b.mu.Lock()
		if len(b.dupDelays) < 100000 {
			b.dupDelays = append(b.dupDelays, delay)
		}
		b.mu.Unlock()
	}
}

// streamError reports a stream-level error element.
func (b *bench) streamError(x *xconn, st *stanza) bool {
	if st.name == "error" && st.space == "http://etherx.jabber.org/streams" {
		b.fail(fmt.Errorf("%s: stream error <%s/> %s", x.name, st.child, strings.TrimSpace(string(st.text))))
		return true
	}
	return false
}

// onApp handles a stanza read by an app-server connection.
func (b *bench) onApp(a *appConn, st *stanza) {
	if b.streamError(a.x, st) {
		return
	}
	if st.name != "message" {
		b.otherStanzas.Add(1)
		return
	}
	if st.typ == "error" {
		// A bounced stanza (spec §4.4): it answers the message.
		b.stanzaErrors.Add(1)
		var m ccsJSON
		_ = json.Unmarshal(st.payload, &m)
		b.answer(a.sem, b.seqOf(m.MessageID), "STANZA_ERROR")
		return
	}
	var m ccsJSON
	if err := json.Unmarshal(st.payload, &m); err != nil {
		b.fail(fmt.Errorf("%s: unparsable payload %q: %v", a.x.name, st.payload, err))
		return
	}
	switch m.MessageType {
	case "ack":
		if b.answer(a.sem, b.seqOf(m.MessageID), "") {
			if b.cfg.scenario == scenarioGroup {
				var s, f int64
				if m.Success != nil {
					s = *m.Success
				}
				if m.Failure != nil {
					f = *m.Failure
				}
				b.groupSuccess.Add(s)
				b.groupFailure.Add(f)
				b.expected.Add(s)
			} else if b.cfg.scenario != scenarioQueue && b.cfg.scenario != scenarioOffline {
				b.expected.Add(1) // queue, offline: no device is online to receive it yet
			}
		}
	case "nack":
		code := m.Error
		if code == "" {
			code = "(none)"
		}
		b.answer(a.sem, b.seqOf(m.MessageID), code)
	case "control":
		if m.ControlType == "CONNECTION_DRAINING" {
			b.draining.Add(1)
		}
	case "receipt":
		b.receipts.Add(1)
		a.scratch = b.appendAck(a.scratch[:0], "gcm.googleapis.com", m.MessageID)
		a.x.send(a.scratch)
	case "":
		// An upstream message: ack it on this connection, then count it.
		a.scratch = b.appendAck(a.scratch[:0], m.From, m.MessageID)
		a.x.send(a.scratch)
		seq := b.seqOf(m.MessageID)
		ok := seq >= 0 && b.cfg.scenario == scenarioUpstream && m.Category == b.cfg.app &&
			m.From == b.devices[seq%len(b.devices)].reg
		b.received(seq, 0, ok)
	default:
		b.otherStanzas.Add(1)
	}
}

// appendAck appends the stanza acking message id (to is "" for a device's
// ack).
func (b *bench) appendAck(dst []byte, to, id string) []byte {
	js := make([]byte, 0, 96)
	if to != "" {
		js = append(js, `{"to":`...)
		js = appendJSONString(js, to)
		js = append(js, `,"message_id":`...)
	} else {
		js = append(js, `{"message_id":`...)
	}
	js = appendJSONString(js, id)
	js = append(js, `,"message_type":"ack"}`...)
	return appendGCM(dst, "", js)
}

// onDevice handles a stanza read by a device session.
func (b *bench) onDevice(d *device, st *stanza) {
	if b.streamError(d.x, st) {
		return
	}
	if st.name != "message" || !st.hasGCM {
		b.otherStanzas.Add(1)
		return
	}
	var m ccsJSON
	if err := json.Unmarshal(st.payload, &m); err != nil {
		b.fail(fmt.Errorf("%s: unparsable payload %q: %v", d.x.name, st.payload, err))
		return
	}
	switch m.MessageType {
	case "":
		// A downstream message: ack at once, then count it.
		d.scratch = b.appendAck(d.scratch[:0], "", m.MessageID)
		d.x.send(d.scratch)
		seq := b.seqOf(m.MessageID)
		ok := seq >= 0 && m.To == d.reg
		switch b.cfg.scenario {
		case scenarioDownstream, scenarioOffline:
			ok = ok && seq%len(b.devices) == d.idx
		case scenarioGroup:
			ok = ok && d.group >= 0 && seq%len(b.groups) == d.group && m.NotificationKey == b.groups[d.group].key
		default:
			ok = false
		}
		b.received(seq, d.pos, ok)
	case "ack", "nack":
		if b.cfg.scenario != scenarioUpstream {
			b.otherStanzas.Add(1)
			return
		}
		code := ""
		if m.MessageType == "nack" {
			code = m.Error
			if code == "" {
				code = "(none)"
			}
		}
		if b.answer(d.sem, b.seqOf(m.MessageID), code) && code == "" {
			b.expected.Add(1)
		}
	default:
		b.otherStanzas.Add(1)
	}
}
