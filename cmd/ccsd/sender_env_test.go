package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestSenderCreateEnv: --env prints export lines that a shell evaluates
// into SENDER and KEY, the same sender the JSON form would have shown.
func TestSenderCreateEnv(t *testing.T) {
	dir := t.TempDir()
	code, out, errs := ccsd(t, "sender", "create", "--env", "--id", "my-app-1", "--data", dir)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	got, err := exec.Command(sh, "-c", out+`printf '%s|%s' "$SENDER" "$KEY"`).Output()
	if err != nil {
		t.Fatal(err)
	}
	id, key, _ := strings.Cut(string(got), "|")
	if id != "my-app-1" || !strings.HasPrefix(key, "AIza") {
		t.Fatalf("the shell read SENDER=%q KEY=%q from %q", id, key, out)
	}
}
