package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
)

// serverRSS returns the resident set size of process pid (ccsd, or
// ccsbench itself) in bytes, from
// the VmRSS line of /proc/PID/status.
func serverRSS(pid int) (int64, error) {
	if pid <= 0 {
		return 0, fmt.Errorf("no server pid")
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		v, ok := strings.CutPrefix(line, "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			break
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			break
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// metrics fetches ccsd's Prometheus text exposition from the admin
// endpoint's /metrics and returns the samples without labels, by name. It
// returns nil when the endpoint does not answer with metrics (a ccsd
// without them): callers then report what /proc gives.
func (h *httpAPI) metrics(ctx context.Context) map[string]float64 {
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+h.adminAddr+"/metrics", nil)
	if err != nil {
		return nil
	}
	req.Header.Set("Accept", "text/plain")
	code, body, err := do(h.plain, req)
	if err != nil || code != http.StatusOK {
		return nil
	}
	m := parseMetrics(body)
	if len(m) == 0 {
		return nil
	}
	return m
}

// collect asks ccsd for a garbage collection through the admin endpoint's
// /debug/pprof/heap?gc=1 (Go's pprof, when ccsd serves it), so that the
// heap figure read next is the live heap, not live plus garbage. It
// reports whether the endpoint answered.
func (h *httpAPI) collect(ctx context.Context) bool {
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+h.adminAddr+"/debug/pprof/heap?gc=1", nil)
	if err != nil {
		return false
	}
	code, _, err := do(h.plain, req)
	return err == nil && code == http.StatusOK
}

// parseMetrics reads the unlabelled samples of a Prometheus text
// exposition ("name value [timestamp]"); comments and labelled samples are
// skipped.
func parseMetrics(body []byte) map[string]float64 {
	m := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || strings.ContainsRune(line, '{') {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			continue
		}
		m[f[0]] = v
	}
	return m
}
