//go:build unix

package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"syscall"
	"testing"

	"github.com/rs/zerolog"
)

// fileLimitLog decodes the "open file limit" line raiseFileLimit logged.
func fileLimitLog(t *testing.T, logs *bytes.Buffer) (level string, soft, hard uint64) {
	t.Helper()
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var v struct {
			Level   string `json:"level"`
			Message string `json:"message"`
			Soft    uint64 `json:"soft"`
			Hard    uint64 `json:"hard"`
		}
		if json.Unmarshal([]byte(line), &v) == nil && strings.Contains(v.Message, "open file limit") {
			return v.Level, v.Soft, v.Hard
		}
	}
	t.Fatalf("no open file limit line in the log:\n%s", logs)
	return "", 0, 0
}

// TestRaiseFileLimit: with the soft limit lowered below the hard one (for
// real, on this test process), raiseFileLimit raises it to the hard limit,
// reports it, and logs both; called again it leaves the limit as it is.
func TestRaiseFileLimit(t *testing.T) {
	var orig syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &orig); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &orig) })
	if orig.Max < 256 {
		t.Skipf("hard RLIMIT_NOFILE %d too low to lower the soft limit under", orig.Max)
	}
	low := orig
	low.Cur = orig.Max / 2 // still far above what the other tests need
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}

	var logs bytes.Buffer
	soft := raiseFileLimit(zerolog.New(&logs))
	var now syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &now); err != nil {
		t.Fatal(err)
	}
	if now.Cur != orig.Max || soft != uint64(orig.Max) {
		t.Fatalf("after raiseFileLimit: soft %d (returned %d), want the hard limit %d", now.Cur, soft, orig.Max)
	}
	if level, s, h := fileLimitLog(t, &logs); level != "info" || s != soft || h != uint64(orig.Max) {
		t.Errorf("logged %s soft=%d hard=%d", level, s, h)
	}

	logs.Reset()
	if again := raiseFileLimit(zerolog.New(&logs)); again != soft {
		t.Errorf("second call: %d, want %d unchanged", again, soft)
	}
	fileLimitLog(t, &logs)
}

// TestRaiseFileLimitNeverLowers: a refused raise, or a soft limit already
// at the hard one, leaves the soft limit where it was, and says so.
func TestRaiseFileLimitNeverLowers(t *testing.T) {
	lim := syscall.Rlimit{Cur: 4096, Max: 4096}
	get := func(l *syscall.Rlimit) error { *l = lim; return nil }
	set := func(l *syscall.Rlimit) error {
		if l.Cur < lim.Cur {
			t.Errorf("setrlimit lowers the soft limit to %d", l.Cur)
		}
		lim = *l
		return nil
	}
	var logs bytes.Buffer
	if got := raiseFileLimitWith(zerolog.New(&logs), get, set); got != 4096 {
		t.Errorf("soft == hard: %d, want 4096", got)
	}

	lim = syscall.Rlimit{Cur: 1024, Max: 1 << 20}
	refuse := func(*syscall.Rlimit) error { return errors.New("operation not permitted") }
	logs.Reset()
	if got := raiseFileLimitWith(zerolog.New(&logs), get, refuse); got != 1024 {
		t.Errorf("refused raise: %d, want the old soft limit 1024", got)
	}
	if level, s, h := fileLimitLog(t, &logs); level != "warn" || s != 1024 || h != 1<<20 {
		t.Errorf("refused raise logged %s soft=%d hard=%d:\n%s", level, s, h, logs.String())
	}
}
