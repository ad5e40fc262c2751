package bolt

import (
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ccsd/ccsd/store"
)

// limitFileSize caps the size of every file this process writes at the
// current size of path, as a full disk would: a write that must grow the
// database fails (EFBIG; Go ignores the SIGXFSZ that comes with it). The
// returned func lifts the cap again.
func limitFileSize(t *testing.T, path string) (lift func()) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	var orig syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &orig); err != nil {
		t.Fatal(err)
	}
	capped := orig
	capped.Cur = uint64(fi.Size())
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &capped); err != nil {
		t.Skipf("cannot cap RLIMIT_FSIZE: %v", err)
	}
	lifted := false
	lift = func() {
		if !lifted {
			lifted = true
			if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &orig); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Cleanup(lift)
	return lift
}

// bigEnqueue is a write large enough to grow a fresh database file.
func bigEnqueue(id string) *store.Enqueue {
	m := msg("d1", "r1", id)
	m.Payload = make([]byte, 1<<20)
	return &store.Enqueue{SenderID: "s1", MessageID: id, DedupUntil: time.Now().UnixMilli() + 60000, Messages: []store.Message{m}}
}

// TestLastCommitErrFollowsCommits: a commit that fails for want of disk
// space sets the store's health signal, with the error its callers got;
// the next successful commit clears it.
func TestLastCommitErrFollowsCommits(t *testing.T) {
	db, path := openTest(t, Options{})
	if err := db.LastCommitErr(); err != nil {
		t.Fatalf("fresh store: %v", err)
	}
	if err := db.PutDevice(store.Device{ID: "before"}); err != nil {
		t.Fatal(err)
	}

	lift := limitFileSize(t, path)
	werr := db.Enqueue(ctx, bigEnqueue("full"))
	if werr == nil {
		t.Fatal("a write growing the file past RLIMIT_FSIZE succeeded")
	}
	err := db.LastCommitErr()
	if err == nil || !strings.Contains(werr.Error(), err.Error()) {
		t.Fatalf("after a failed commit: LastCommitErr = %v, want the writer's error %v", err, werr)
	}
	t.Logf("disk-full commit error: %v", err)
	lift()

	if err := db.Enqueue(ctx, bigEnqueue("later")); err != nil {
		t.Fatalf("write after space came back: %v", err)
	}
	if err := db.LastCommitErr(); err != nil {
		t.Fatalf("after a successful commit: LastCommitErr = %v", err)
	}
	// Nothing of the failed write survived; the store is whole.
	if n, _ := db.QueueLen("d1"); n != 1 {
		t.Errorf("queue d1 holds %d messages, want only the later one", n)
	}
	if _, err := db.Device("before"); err != nil {
		t.Error(err)
	}
	db.Close()
	if err := db.LastCommitErr(); !errors.Is(err, store.ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
}
