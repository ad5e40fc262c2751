package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/ccsd/ccsd/httpapi"
)

// senderSet runs "ccsd sender set" and decodes the sender it prints.
func senderSet(t *testing.T, args ...string) (int, httpapi.SenderJSON, string) {
	t.Helper()
	code, out, errs := ccsd(t, append([]string{"sender", "set"}, args...)...)
	var s httpapi.SenderJSON
	if code == 0 {
		if err := json.Unmarshal([]byte(out), &s); err != nil {
			t.Fatalf("sender set printed %q: %v", out, err)
		}
	}
	return code, s, errs
}

// listCopies is "ccsd sender list" as id -> group_copies.
func listCopies(t *testing.T, dir string) map[string]bool {
	t.Helper()
	code, out, errs := ccsd(t, "sender", "list", "--data", dir)
	var list []httpapi.SenderJSON
	if code != 0 || json.Unmarshal([]byte(out), &list) != nil {
		t.Fatalf("sender list: %d %q %q", code, out, errs)
	}
	m := map[string]bool{}
	for _, s := range list {
		m[s.SenderID] = s.GroupCopies
	}
	return m
}

// TestSenderSetGroupCopies: "ccsd sender set ID --group-copies=..." turns
// the option on and off on the store directly with no server running, and
// through the admin endpoint while one runs (the store is locked then);
// the list shows it; no option, no id, a bad value or an unknown sender
// fail clearly.
func TestSenderSetGroupCopies(t *testing.T) {
	dir := t.TempDir()
	if code, _, errs := ccsd(t, "sender", "create", "--id", "app1", "--data", dir); code != 0 {
		t.Fatalf("create: %d %s", code, errs)
	}
	if m := listCopies(t, dir); m["app1"] {
		t.Fatal("group copies on for a new sender")
	}
	code, s, errs := senderSet(t, "app1", "--group-copies=true", "--data", dir)
	if code != 0 || s.SenderID != "app1" || !s.GroupCopies {
		t.Fatalf("set offline: %d %+v %s", code, s, errs)
	}
	if m := listCopies(t, dir); !m["app1"] {
		t.Fatal("list does not show the option set offline")
	}
	for _, bad := range [][]string{{"app1"}, {"--group-copies=true"}, {"app1", "--group-copies=maybe"}, {"app1", "app2", "--group-copies"}} {
		if code, _, errs := senderSet(t, append(bad, "--data", dir)...); code != exitUsage {
			t.Errorf("set %q: %d %q, want usage", bad, code, errs)
		}
	}
	if code, _, errs := senderSet(t, "ghost", "--group-copies=true", "--data", dir); code != exitFail || !strings.Contains(errs, "unknown sender") {
		t.Errorf("set unknown: %d %q", code, errs)
	}

	startServe(t, dir)
	code, s, errs = senderSet(t, "app1", "--group-copies=false", "--data", dir, "--log-level", "debug")
	if code != 0 || s.GroupCopies || !strings.Contains(errs, "admin endpoint") {
		t.Fatalf("set via admin: %d %+v %q", code, s, errs)
	}
	if m := listCopies(t, dir); m["app1"] {
		t.Fatal("list via admin does not show the option cleared")
	}
	if code, _, errs := senderSet(t, "ghost", "--group-copies=true", "--data", dir); code != exitFail || !strings.Contains(errs, "unknown sender") {
		t.Errorf("set unknown via admin: %d %q", code, errs)
	}
}
