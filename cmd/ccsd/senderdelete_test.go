package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ccsd/ccsd/auth"
	"github.com/ccsd/ccsd/store"
	"github.com/ccsd/ccsd/store/bolt"
)

// TestSenderDeleteOffline: on a store no server holds, delete refuses a
// sender with a live registration, deletes it with --force (counting what
// went), and then knows it no more.
func TestSenderDeleteOffline(t *testing.T) {
	dir := t.TempDir()
	code, out, errs := ccsd(t, "sender", "create", "--id", "app-1", "--data", dir)
	if code != exitOK {
		t.Fatalf("create: %d %s", code, errs)
	}
	_ = out
	db, err := bolt.Open(filepath.Join(dir, "ccsd.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	devices := auth.NewDevices(db)
	dev, _, err := devices.Checkin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := devices.Register(context.Background(), dev, "app-1", "com.example"); err != nil {
		t.Fatal(err)
	}
	db.Close()

	code, _, errs = ccsd(t, "sender", "delete", "app-1", "--data", dir)
	if code != exitFail || !strings.Contains(errs, "live registrations") || !strings.Contains(errs, "--force") {
		t.Fatalf("delete without --force: %d %s", code, errs)
	}
	code, out, errs = ccsd(t, "sender", "delete", "--force", "app-1", "--data", dir)
	var got senderDeleted
	if code != exitOK || json.Unmarshal([]byte(out), &got) != nil || !got.Deleted || got.Registrations != 1 {
		t.Fatalf("delete --force: %d %q %s", code, out, errs)
	}
	if code, _, errs := ccsd(t, "sender", "delete", "app-1", "--data", dir); code != exitFail || !strings.Contains(errs, "unknown sender") {
		t.Fatalf("delete again: %d %s", code, errs)
	}
	db, err = bolt.Open(filepath.Join(dir, "ccsd.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.FindRegistration(dev, "app-1", "com.example"); err == nil {
		t.Fatal("the registration survived --force")
	}
	if _, err := db.Sender("app-1"); err == nil || !strings.Contains(err.Error(), store.ErrNotFound.Error()) {
		t.Fatalf("sender after delete: %v", err)
	}
}
