package e2e

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
)

// TestSecondServerNamesTheFirst: a second ccsd on a data directory in use
// fails with an error that names the running server's pid and says what
// to do, instead of only "in use".
func TestSecondServerNamesTheFirst(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	out, err := exec.Command(ccsdBin, "serve", "--data", s.Data, "--xmpp-addr", "127.0.0.1:0", "--device-addr", "127.0.0.1:0",
		"--http-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--log-format", "json").CombinedOutput()
	if err == nil {
		t.Fatal("a second server started on a data directory in use")
	}
	for _, want := range []string{fmt.Sprintf("in use by ccsd pid %d", s.Info.PID), "another --data"} {
		if !strings.Contains(string(out), want) {
			t.Fatalf("second server said %s, want %q", out, want)
		}
	}
}
