package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ccsd/ccsd/auth"
	"github.com/ccsd/ccsd/httpapi"
)

// TestServiceAccountCommandsOffline: with no server running, create
// writes the key file (mode 0600, never over an existing file) with the
// token_uri given or serve's default, list shows the keys without their
// secret, delete removes one; usage errors exit 2.
func TestServiceAccountCommandsOffline(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if code, _, errs := ccsd(t, "sender", "create", "--id", "proj", "--data", dir); code != 0 {
		t.Fatalf("sender create: %s", errs)
	}
	file := filepath.Join(t.TempDir(), "key.json")
	if code, _, errs := ccsd(t, "serviceaccount", "create", "--sender", "proj", "--out", file, "--data", dir); code != 0 {
		t.Fatalf("create --out: %d %s", code, errs)
	}
	st, err := os.Stat(file)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", st, err)
	}
	var f auth.ServiceAccountFile
	b, _ := os.ReadFile(file)
	if json.Unmarshal(b, &f) != nil || f.ProjectID != "proj" || f.TokenURI != "https://127.0.0.1:8443/token" || f.PrivateKey == "" {
		t.Fatalf("key file %s", b)
	}
	if code, _, errs := ccsd(t, "serviceaccount", "create", "--sender", "proj", "--out", file, "--data", dir); code != exitFail || !strings.Contains(errs, "exists") {
		t.Fatalf("create over an existing file: %d %s", code, errs)
	}
	code, out, errs := ccsd(t, "serviceaccount", "create", "--sender", "proj", "--token-uri", "https://push.example.org/token", "--data", dir)
	var printed auth.ServiceAccountFile
	if code != 0 || json.Unmarshal([]byte(out), &printed) != nil || printed.TokenURI != "https://push.example.org/token" {
		t.Fatalf("create --token-uri: %d %s %s", code, out, errs)
	}
	code, out, _ = ccsd(t, "serviceaccount", "list", "--sender", "proj", "--data", dir)
	var keys []httpapi.ServiceKeyJSON
	if code != 0 || json.Unmarshal([]byte(out), &keys) != nil || len(keys) != 2 || strings.Contains(out, "PRIVATE KEY") {
		t.Fatalf("list: %d %s", code, out)
	}
	if code, _, errs := ccsd(t, "serviceaccount", "delete", "--sender", "proj", "--data", dir, f.PrivateKeyID); code != 0 {
		t.Fatalf("delete: %s", errs)
	}
	if code, _, errs := ccsd(t, "serviceaccount", "delete", "--sender", "proj", "--data", dir, f.PrivateKeyID); code != exitFail || !strings.Contains(errs, "unknown service-account key") {
		t.Fatalf("second delete: %d %s", code, errs)
	}
	if code, _, errs := ccsd(t, "serviceaccount", "create", "--sender", "nobody", "--data", dir); code != exitFail || !strings.Contains(errs, "unknown sender") {
		t.Fatalf("unknown sender: %d %s", code, errs)
	}
	for _, args := range [][]string{{"serviceaccount"}, {"serviceaccount", "rotate"}, {"serviceaccount", "create"}, {"serviceaccount", "delete", "--sender", "proj"}} {
		if code, _, _ := ccsd(t, args...); code != exitUsage {
			t.Errorf("%v: exit %d, want %d", args, code, exitUsage)
		}
	}
	if got := tokenURIFor("[::]:5443"); got != "https://localhost:5443/token" {
		t.Errorf("tokenURIFor(all interfaces) = %s", got)
	}
	if got := tokenURIFor("[::1]:5443"); got != "https://[::1]:5443/token" {
		t.Errorf("tokenURIFor(::1) = %s", got)
	}
}
