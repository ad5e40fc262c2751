package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// report is the summary of one run; its JSON form is what --json prints.
// What "accepted" and "delivered" count depends on the scenario (see the
// package documentation).
type report struct {
	Tool     string       `json:"tool"`
	Scenario string       `json:"scenario"`
	Machine  machine      `json:"machine"`
	Server   serverInfo   `json:"server"`
	Config   reportConfig `json:"config"`

	SetupSeconds   float64 `json:"setup_seconds"`
	ElapsedSeconds float64 `json:"elapsed_seconds"`
	Complete       bool    `json:"complete"`

	Sent         int64            `json:"sent"`
	Accepted     int64            `json:"accepted"`
	Nacked       int64            `json:"nacked"`
	Nacks        map[string]int64 `json:"nacks"`
	Unanswered   int64            `json:"unanswered"`
	StanzaErrors int64            `json:"stanza_errors"`
	AcceptPerSec float64          `json:"accepted_per_sec"`

	ExpectedCopies    int64    `json:"expected_copies"`
	Delivered         int64    `json:"delivered"`
	Missing           int64    `json:"missing"`
	Duplicates        int64    `json:"duplicates"`
	Unexpected        int64    `json:"unexpected"`
	DeliveredUnacked  int64    `json:"delivered_unaccepted"`
	DeliveriesPerSec  float64  `json:"delivered_per_sec"`
	DuplicateAnswers  int64    `json:"duplicate_answers"`
	Receipts          int64    `json:"receipts"`
	DrainingControls  int64    `json:"draining_controls"`
	OtherStanzas      int64    `json:"other_stanzas"`
	AckLatency        latency  `json:"ack_latency_ms"`
	DeliveryLatency   latency  `json:"delivery_latency_ms"`
	DuplicateDelay    *latency `json:"duplicate_delay_ms,omitempty"`
	ClientCPUSeconds  float64  `json:"client_cpu_seconds"`
	ServerCPUSeconds  *float64 `json:"server_cpu_seconds,omitempty"`
	MachineCPUSeconds *float64 `json:"machine_busy_cpu_seconds,omitempty"`
	OtherCPUSeconds   *float64 `json:"other_cpu_seconds,omitempty"`
	ClientWrites      int64    `json:"client_writes"`
	ClientStanzasRead int64    `json:"client_stanzas_read"`

	Group *groupReport `json:"group,omitempty"`
	Idle  *idleReport  `json:"idle,omitempty"`
	Login *loginReport `json:"login,omitempty"`
	// Offline holds the offline scenario's restart and drain.
	Offline *offlineReport `json:"offline,omitempty"`

	// OfferedPerSec is --rate (0: unpaced); SentPerSec the rate achieved:
	// messages sent divided by the time of the last send.
	OfferedPerSec float64 `json:"offered_per_sec"`
	SentPerSec    float64 `json:"sent_per_sec"`

	// Timeline is the run per second (message scenarios and login).
	Timeline []second `json:"timeline,omitempty"`

	Errors   []string `json:"errors"`
	Problems []string `json:"problems"`
	// Warnings are about figures to doubt, not a failed run.
	Warnings []string `json:"warnings,omitempty"`
	OK       bool     `json:"ok"`
}

// machine describes where the figures were measured.
type machine struct {
	GOOS       string `json:"goos"`
	GOARCH     string `json:"goarch"`
	NumCPU     int    `json:"num_cpu"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	CPUModel   string `json:"cpu_model,omitempty"`
	GoVersion  string `json:"go_version"`
	LoadAvg    string `json:"loadavg,omitempty"` // /proc/loadavg before the run
}

type serverInfo struct {
	XMPPAddr   string `json:"xmpp_addr"`
	DeviceAddr string `json:"device_addr"`
	HTTPAddr   string `json:"http_addr"`
	AdminAddr  string `json:"admin_addr"`
	PID        int    `json:"pid,omitempty"`
	Sender     string `json:"sender,omitempty"`
}

type reportConfig struct {
	Devices         int     `json:"devices"`
	Conns           int     `json:"conns"`
	Messages        int     `json:"messages"`
	Window          int     `json:"window"`
	GroupSize       int     `json:"group_size,omitempty"`
	Groups          int     `json:"groups,omitempty"`
	PayloadBytes    int     `json:"payload_bytes"`
	DurationSeconds float64 `json:"duration_cap_seconds"`
	App             string  `json:"app"`
	Rate            float64 `json:"rate,omitempty"`
	SourceAddrs     int     `json:"source_addrs"`
}

// groupReport holds the group scenario's own figures.
type groupReport struct {
	Groups         int     `json:"groups"`
	GroupSize      int     `json:"group_size"`
	MessagesPerSec float64 `json:"group_messages_per_sec"`
	CopiesPerSec   float64 `json:"device_copies_per_sec"`
	AckSuccess     int64   `json:"ack_success"`
	AckFailure     int64   `json:"ack_failure"`
}

// latency summarizes durations in milliseconds.
type latency struct {
	N    int     `json:"n"`
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

func summarize(ns []int64) latency {
	if len(ns) == 0 {
		return latency{}
	}
	slices.Sort(ns)
	ms := func(v int64) float64 { return float64(v/1000) / 1000 }
	q := func(p float64) float64 {
		i := int(p*float64(len(ns))+0.5) - 1
		return ms(ns[min(max(i, 0), len(ns)-1)])
	}
	var sum float64
	for _, v := range ns {
		sum += float64(v)
	}
	return latency{N: len(ns), P50: q(0.50), P90: q(0.90), P99: q(0.99), Max: ms(ns[len(ns)-1]), Mean: float64(int64(sum/float64(len(ns)))/1000) / 1000}
}

func newReport(cfg *config) *report {
	r := &report{
		Tool:     "ccsbench",
		Scenario: cfg.scenario,
		Machine:  thisMachine(),
		Server: serverInfo{
			XMPPAddr: cfg.xmppAddr, DeviceAddr: cfg.deviceAddr,
			HTTPAddr: cfg.httpAddr, AdminAddr: cfg.adminAddr,
		},
		Config: reportConfig{
			Devices: cfg.devices, Conns: cfg.conns, Messages: cfg.messages, Window: cfg.window,
			PayloadBytes: cfg.payload, DurationSeconds: cfg.duration.Seconds(), App: cfg.app,
			Rate: cfg.rate, SourceAddrs: cfg.sourceAddrs,
		},
		OfferedPerSec: cfg.rate,
		Nacks:         map[string]int64{},
		Errors:        []string{},
		Problems:      []string{},
	}
	return r
}

// fill computes the report from what the run recorded.
func (b *bench) fill(r *report) {
	r.Server.PID = b.cfg.pid
	r.Server.Sender = b.sender
	elapsed := time.Since(b.start)
	ackNs, delNs, lastAck, lastDel := b.scan(r)
	r.Timeline = b.timeline()
	r.ElapsedSeconds = elapsed.Seconds()
	r.Accepted = b.acked.Load()
	r.Nacked = b.nacked.Load()
	b.mu.Lock()
	for k, v := range b.nacks {
		r.Nacks[k] = v
	}
	r.Errors = append(r.Errors, b.errs...)
	if len(b.dupDelays) > 0 {
		l := summarize(slices.Clone(b.dupDelays))
		r.DuplicateDelay = &l
	}
	b.mu.Unlock()
	r.Unanswered = r.Sent - b.answered.Load()
	r.StanzaErrors = b.stanzaErrors.Load()
	r.ExpectedCopies = b.expected.Load()
	r.Delivered = b.unique.Load()
	r.Duplicates = b.dups.Load()
	r.Unexpected = b.unexpected.Load()
	r.DuplicateAnswers = b.dupAnswers.Load()
	r.Receipts = b.receipts.Load()
	r.DrainingControls = b.draining.Load()
	r.OtherStanzas = b.otherStanzas.Load()
	r.AckLatency = summarize(ackNs)
	r.DeliveryLatency = summarize(delNs)
	if lastAck > 0 {
		r.AcceptPerSec = round1(float64(r.Accepted) / time.Duration(lastAck).Seconds())
	}
	if lastDel > 0 {
		r.DeliveriesPerSec = round1(float64(len(delNs)) / time.Duration(lastDel).Seconds())
	}
	for _, d := range b.devices {
		if d.x == nil { // queue: never logged in
			continue
		}
		r.ClientWrites += d.x.writes.Load()
		r.ClientStanzasRead += d.x.stanzas.Load()
	}
	for _, a := range b.apps {
		r.ClientWrites += a.x.writes.Load()
		r.ClientStanzasRead += a.x.stanzas.Load()
	}
	if b.cfg.scenario == scenarioGroup {
		r.Config.GroupSize, r.Config.Groups = b.copies, len(b.groups)
		r.Group = &groupReport{
			Groups: len(b.groups), GroupSize: b.copies,
			MessagesPerSec: r.AcceptPerSec, CopiesPerSec: r.DeliveriesPerSec,
			AckSuccess: b.groupSuccess.Load(), AckFailure: b.groupFailure.Load(),
		}
	}
	r.Complete = b.answered.Load() == int64(b.n) && r.Missing == 0
	r.judge(b)
}

// judge lists in r.Problems everything that makes the run not OK, and sets
// r.OK.
func (r *report) judge(b *bench) {
	if !r.Complete {
		r.Problems = append(r.Problems, fmt.Sprintf("incomplete: %d of %d messages answered, %d copies missing, when the run stopped after %.2fs (--duration %v)",
			b.answered.Load(), b.n, r.Missing, r.ElapsedSeconds, b.cfg.duration))
	}
	if r.Nacked > 0 {
		r.Problems = append(r.Problems, fmt.Sprintf("%d nacks %v", r.Nacked, r.Nacks))
	}
	if r.StanzaErrors > 0 {
		r.Problems = append(r.Problems, fmt.Sprintf("%d stanza errors", r.StanzaErrors))
	}
	if r.Unexpected > 0 {
		r.Problems = append(r.Problems, fmt.Sprintf("%d copies reached the wrong recipient or carried an unknown id", r.Unexpected))
	}
	if r.DeliveredUnacked > 0 {
		r.Problems = append(r.Problems, fmt.Sprintf("%d copies of messages that were not accepted arrived", r.DeliveredUnacked))
	}
	if b.cfg.scenario == scenarioGroup && r.Group.AckFailure > 0 {
		r.Problems = append(r.Problems, fmt.Sprintf("group acks report %d failed registrations", r.Group.AckFailure))
	}
	if len(r.Errors) > 0 {
		r.Problems = append(r.Problems, fmt.Sprintf("%d connection or protocol errors", len(r.Errors)))
	}
	r.OK = len(r.Problems) == 0
}

// scan walks every message: it counts in r the ones sent, the copies
// missing and those delivered though not accepted, and returns the ack and
// delivery latencies (ns) with the time (ns since the start) of the last
// of each.
func (b *bench) scan(r *report) (ackNs, delNs []int64, lastAck, lastDel int64) {
	var lastSent int64
	defer func() {
		if lastSent > 0 {
			r.SentPerSec = round1(float64(r.Sent) / time.Duration(lastSent).Seconds())
		}
	}()
	for seq := 0; seq < b.n; seq++ {
		st := b.state[seq].Load()
		if st == stUnsent {
			continue
		}
		r.Sent++
		sent := b.sentAt[seq].Load()
		lastSent = max(lastSent, sent)
		if st == stAcked {
			at := b.ackAt[seq].Load()
			ackNs = append(ackNs, at-sent)
			lastAck = max(lastAck, at)
		}
		for pos := 0; pos < b.copies; pos++ {
			i := seq*b.copies + pos
			if b.counts[i].Load() > 0 {
				at := b.firstAt[i].Load()
				delNs = append(delNs, at-sent)
				lastDel = max(lastDel, at)
				if st != stAcked {
					r.DeliveredUnacked++
				}
			} else if st == stAcked {
				r.Missing++
			}
		}
	}
	return ackNs, delNs, lastAck, lastDel
}

// fmtLatency formats l for the text summary.
func fmtLatency(l latency) string {
	return fmt.Sprintf("p50 %.2f  p90 %.2f  p99 %.2f  max %.2f ms", l.P50, l.P90, l.P99, l.Max)
}

func round1(v float64) float64 { return float64(int64(v*10+0.5)) / 10 }

// writeText writes the human summary.
func (r *report) writeText(w io.Writer) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	m := r.Machine
	cpu := m.CPUModel
	if cpu == "" {
		cpu = "CPU model unknown"
	}
	p("ccsbench %s: ccsd at xmpp %s, device %s, https %s", r.Scenario, r.Server.XMPPAddr, r.Server.DeviceAddr, r.Server.HTTPAddr)
	p("machine: %s/%s, %d CPUs (GOMAXPROCS %d), %s, %s; ccsbench and ccsd share it", m.GOOS, m.GOARCH, m.NumCPU, m.GOMAXPROCS, cpu, m.GoVersion)
	c := r.Config
	switch r.Scenario {
	case scenarioIdle:
		p("config: %d device sessions, %d app-server connections, held %gs", c.Devices, c.Conns, c.DurationSeconds)
	case scenarioLogin:
		p("config: %d devices, %d parallel dialers, for %gs", c.Devices, c.Conns, c.DurationSeconds)
	default:
		p("config: %d devices, %d app-server connections, %d messages, window %d, payload %d B, cap %gs",
			c.Devices, c.Conns, c.Messages, c.Window, c.PayloadBytes, c.DurationSeconds)
	}
	if r.Group != nil {
		p("        %d groups of %d registrations", r.Group.Groups, r.Group.GroupSize)
	}
	if c.SourceAddrs > 1 {
		p("        from %d source addresses 127.0.0.1..%s", c.SourceAddrs, sourceAddr(c.SourceAddrs-1))
	}
	switch {
	case r.Idle != nil:
		r.writeIdle(p)
		return
	case r.Login != nil:
		r.writeLogin(p)
		return
	}
	p("setup: %.2fs", r.SetupSeconds)
	if r.OfferedPerSec > 0 {
		p("rate: offered %.1f/s, sent %.1f/s", r.OfferedPerSec, r.SentPerSec)
	}
	state := "complete"
	if !r.Complete {
		state = "INCOMPLETE"
	}
	p("run: %s, %.2fs", state, r.ElapsedSeconds)
	acc, del := "accepted (ccsd acks to app servers)", "delivered (copies at devices)"
	switch r.Scenario {
	case scenarioGroup:
		acc, del = "group messages (ccsd acks)", "device copies"
	case scenarioUpstream:
		acc, del = "accepted (ccsd acks to devices)", "delivered (at app servers)"
	}
	lat := fmtLatency
	p("  %-36s %7d/%-7d %9.1f/s   latency %s", acc, r.Accepted, r.Sent, r.AcceptPerSec, lat(r.AckLatency))
	p("  %-36s %7d/%-7d %9.1f/s   latency %s", del, r.Delivered, r.ExpectedCopies, r.DeliveriesPerSec, lat(r.DeliveryLatency))
	nacks := "none"
	if len(r.Nacks) > 0 {
		var parts []string
		for k, v := range r.Nacks {
			parts = append(parts, fmt.Sprintf("%s %d", k, v))
		}
		slices.Sort(parts)
		nacks = strings.Join(parts, ", ")
	}
	p("  nacks: %s; missing %d; duplicates %d; unexpected %d; unanswered %d", nacks, r.Missing, r.Duplicates, r.Unexpected, r.Unanswered)
	if r.DuplicateDelay != nil {
		p("  duplicates arrived after the first copy by %s", lat(*r.DuplicateDelay))
	}
	if r.Group != nil {
		p("  group acks: success %d, failure %d", r.Group.AckSuccess, r.Group.AckFailure)
	}
	if r.Offline != nil {
		r.writeOffline(p)
	}
	p("  cpu during the run: ccsbench %.2fs, ccsd %s; client wrote %d batches, read %d stanzas", r.ClientCPUSeconds, r.serverCPU(), r.ClientWrites, r.ClientStanzasRead)
	r.writeTail(p)
}

// serverCPU returns ccsd's CPU seconds for the text summary.
func (r *report) serverCPU() string {
	if r.ServerCPUSeconds == nil {
		return "unknown (pass --data of the running ccsd)"
	}
	return fmt.Sprintf("%.2fs", *r.ServerCPUSeconds)
}

// writeTail writes the machine's load, the errors and the verdict.
func (r *report) writeTail(p func(string, ...any)) {
	if r.MachineCPUSeconds != nil {
		other := ""
		if r.OtherCPUSeconds != nil {
			other = fmt.Sprintf(", of which %.2fs by other processes", *r.OtherCPUSeconds)
		}
		p("  machine busy %.2f CPU-s of %.2f available%s (load average before: %s)",
			*r.MachineCPUSeconds, r.ElapsedSeconds*float64(r.Machine.NumCPU), other, r.Machine.LoadAvg)
	}
	for _, e := range r.Errors {
		p("  error: %s", e)
	}
	for _, w := range r.Warnings {
		p("WARNING: %s", w)
	}
	if r.OK {
		p("OK")
	} else {
		for _, pr := range r.Problems {
			p("PROBLEM: %s", pr)
		}
	}
}

// thisMachine describes the machine ccsbench runs on.
func thisMachine() machine {
	return machine{
		GOOS: runtime.GOOS, GOARCH: runtime.GOARCH,
		NumCPU: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0),
		CPUModel: cpuModel(), GoVersion: runtime.Version(), LoadAvg: loadAvg(),
	}
}

// loadAvg returns the 1, 5 and 15 minute load averages of /proc/loadavg,
// or "".
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// machineBusy returns the CPU seconds all processes of the machine used
// so far (every field of /proc/stat's cpu line but idle and iowait).
func machineBusy() (float64, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, fmt.Errorf("unexpected /proc/stat")
	}
	var busy int64
	for i, v := range f[1:9] { // user nice system idle iowait irq softirq steal
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("unexpected /proc/stat")
		}
		if i != 3 && i != 4 {
			busy += n
		}
	}
	return float64(busy) / 100, nil
}

// cpuModel returns the CPU model named in /proc/cpuinfo, or "".
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	fallback := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch k {
		case "model name":
			return v
		case "Hardware", "cpu model", "Processor", "uarch":
			if fallback == "" {
				fallback = v
			}
		}
	}
	return fallback
}

// serverCPU returns the user+system CPU seconds of process pid, from
// /proc/PID/stat (clock ticks of 1/100 s, the fixed USER_HZ of Linux).
func serverCPU(pid int) (float64, error) {
	if pid <= 0 {
		return 0, fmt.Errorf("no server pid")
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	return float64(ut+st) / 100, nil
}
