package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// prlimitFsize sets RLIMIT_FSIZE of process pid (the ccsd under test) to
// lim, if not nil, and returns the limit it had: a cap at the database's
// size is a full disk for that process alone.
func prlimitFsize(t *testing.T, pid int, lim *syscall.Rlimit) (old syscall.Rlimit) {
	t.Helper()
	_, _, errno := syscall.RawSyscall6(syscall.SYS_PRLIMIT64, uintptr(pid), syscall.RLIMIT_FSIZE,
		uintptr(unsafe.Pointer(lim)), uintptr(unsafe.Pointer(&old)), 0, 0)
	if errno != 0 {
		t.Skipf("prlimit RLIMIT_FSIZE on ccsd: %v", errno)
	}
	return old
}

// TestReadyzStoreFull: when the server's disk is full (its file-size limit
// capped at the database's size), a message that needs room gets a
// retryable nack, /readyz says 503 "store" while /healthz stays 200; once
// there is room again the retry is acked and /readyz is ready again.
func TestReadyzStoreFull(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--max-queued-per-registration", "0") // the disk, not the per-registration bound, must stop the writes
	d := s.checkin()
	reg := s.register(d, s.Sender, "com.example")
	app := s.appServer()
	fi, err := os.Stat(filepath.Join(s.Data, "ccsd.db"))
	if err != nil {
		t.Fatal(err)
	}
	old := prlimitFsize(t, s.Info.PID, nil)
	prlimitFsize(t, s.Info.PID, &syscall.Rlimit{Cur: uint64(fi.Size()), Max: old.Max})
	lifted := false
	lift := func() {
		if !lifted {
			lifted = true
			prlimitFsize(t, s.Info.PID, &old)
		}
	}
	defer lift()

	// 4 KB messages fill the file's free pages, then one needs it to grow.
	data := `{"to":"` + reg + `","data":{"x":"` + strings.Repeat("x", 3900) + `"},"message_id":"`
	var nacked string
	for i := 0; i < 200 && nacked == ""; i++ {
		id := fmt.Sprint("m", i)
		app.send(data + id + `"}`)
		m := app.expect(wait)
		switch m.str("message_type") {
		case "ack":
		case "nack":
			if code := m.str("error"); code != "SERVICE_UNAVAILABLE" && code != "INTERNAL_SERVER_ERROR" {
				t.Fatalf("message refused on a full disk with %q, want a retryable code: %v", code, m.json)
			}
			nacked = id
		default:
			t.Fatalf("answer: %v", m.json)
		}
	}
	if nacked == "" {
		t.Fatal("200 messages of 4 KB fitted in a file capped at its size")
	}
	t.Logf("message %s refused on the full disk", nacked)
	if code, reason := s.readyz(); code != http.StatusServiceUnavailable || reason != "store" {
		t.Errorf("/readyz with the disk full: %d %q, want 503 store", code, reason)
	}
	if code, body := s.adminDo("GET", "/healthz", ""); code != http.StatusOK {
		t.Errorf("/healthz with the disk full: %d %q, want 200 (liveness)", code, body)
	}

	lift()
	app.send(data + nacked + `"}`)
	if m := app.expect(wait); m.str("message_type") != "ack" || m.str("message_id") != nacked {
		t.Fatalf("retry once there is room: %v", m.json)
	}
	checkFor(t, wait, 20*time.Millisecond, func() error {
		if code, reason := s.readyz(); code != http.StatusOK {
			return fmt.Errorf("/readyz after the store recovered: %d %q", code, reason)
		}
		return nil
	})
}
