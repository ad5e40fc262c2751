package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ccsd/ccsd/store"
	"github.com/ccsd/ccsd/store/bolt"
)

// appConfig returns the config "ccsd serve" would run with: the flags'
// defaults, a fresh data directory, every port on 127.0.0.1:0 unless extra
// says otherwise.
func appConfig(t *testing.T, extra ...string) serveConfig {
	t.Helper()
	var cfg serveConfig
	args := append([]string{"--data", t.TempDir(),
		"--xmpp-addr", "127.0.0.1:0", "--device-addr", "127.0.0.1:0",
		"--http-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--drain-grace", "2s"}, extra...)
	if _, err := parseFlags(serveFlags(&cfg, io.Discard), args); err != nil {
		t.Fatal(err)
	}
	if err := cfg.check(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// storeLocked reports whether the store of data directory dir is held by
// an open app (store.Open then fails with ErrLocked after its timeout).
func storeLocked(t *testing.T, dir string) bool {
	t.Helper()
	db, err := bolt.Open(filepath.Join(dir, "ccsd.db"), bolt.Options{LockTimeout: 200 * time.Millisecond})
	if errors.Is(err, store.ErrLocked) {
		return true
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return false
}

// TestAppLifecycle: newApp prints the default sender and holds the store
// but binds nothing; Start serves every port, says ready and writes
// run.json with the bound addresses; Shutdown stops every Serve normally,
// closes every port, removes run.json and releases the store.
func TestAppLifecycle(t *testing.T) {
	cfg := appConfig(t)
	var stdout bytes.Buffer
	a, err := newApp(cfg, zerolog.Nop(), &stdout)
	if err != nil {
		t.Fatal(err)
	}
	decodeCreated(t, stdout.String())
	if !storeLocked(t, cfg.data) {
		t.Fatal("the store is not held by the new app")
	}
	if err := a.state.ready(context.Background()); err == nil {
		t.Error("ready before Start")
	}
	if _, err := readRunInfo(cfg.data); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("run.json before Start: %v", err)
	}

	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	info, err := readRunInfo(cfg.data)
	if err != nil {
		t.Fatal(err)
	}
	bound := []net.Listener{a.lXMPP, a.lDevice, a.lHTTP, a.lAdmin}
	for i, addr := range []string{info.XMPPAddr, info.DeviceAddr, info.HTTPAddr, info.AdminAddr} {
		if addr != bound[i].Addr().String() || strings.HasSuffix(addr, ":0") {
			t.Errorf("run.json address %d is %s, bound %s", i, addr, bound[i].Addr())
		}
	}
	if info.PID != os.Getpid() || info.Instance != a.instance || a.instance == "" {
		t.Errorf("run.json %+v, instance %q", info, a.instance)
	}
	resp, err := http.Get("http://" + info.AdminAddr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/readyz after Start: %d", resp.StatusCode)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := a.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	for i := 0; i < 4; i++ {
		select {
		case err := <-a.Failed():
			if err != nil {
				t.Errorf("a Serve call failed: %v", err)
			}
		case <-ctx.Done():
			t.Fatalf("only %d of 4 Serve calls returned", i)
		}
	}
	for _, addr := range []string{info.XMPPAddr, info.DeviceAddr, info.HTTPAddr, info.AdminAddr} {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			t.Errorf("%s still accepts after Shutdown", addr)
		}
	}
	if _, err := readRunInfo(cfg.data); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("run.json after Shutdown: %v", err)
	}
	if storeLocked(t, cfg.data) {
		t.Error("the store is still held after Shutdown")
	}
}

// TestAppPortsTaken: busy ports fail newApp before anything is created
// (no data directory, no database, no default sender printed), every busy
// port is named with the flag that moves it, and the ports bound meanwhile
// are free again.
func TestAppPortsTaken(t *testing.T) {
	var taken [2]net.Listener
	for i := range taken {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		taken[i] = l
	}
	free := make([]string, 2) // xmpp, http
	for i := range free {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		free[i] = l.Addr().String()
		l.Close()
	}
	cfg := appConfig(t, "--xmpp-addr", free[0], "--device-addr", taken[0].Addr().String(), "--http-addr", free[1],
		"--admin-addr", taken[1].Addr().String())
	cfg.data = filepath.Join(cfg.data, "fresh")
	var stdout strings.Builder
	_, err := newApp(cfg, zerolog.Nop(), &stdout)
	if err == nil {
		t.Fatal("newApp with two ports taken succeeded")
	}
	for _, want := range []string{"listen device on " + taken[0].Addr().String(), "--device-addr", "listen admin on " + taken[1].Addr().String(), "--admin-addr", "port 0"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	for _, addr := range free {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Errorf("%s not closed again after the failed start: %v", addr, err)
			continue
		}
		l.Close()
	}
	if _, err := os.Stat(cfg.data); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the data directory exists after a failed start: %v", err)
	}
	if stdout.Len() != 0 {
		t.Errorf("a failed start printed a default sender: %q", stdout.String())
	}
}

// TestNewAppReleasesOnError: a part that fails to build (here an
// unreadable TLS key pair) releases what was built before it, the store
// included.
func TestNewAppReleasesOnError(t *testing.T) {
	cfg := appConfig(t)
	if err := os.WriteFile(cfg.tlsCert, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg.tlsKey, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := newApp(cfg, zerolog.Nop(), io.Discard); err == nil || !strings.Contains(err.Error(), "TLS certificate") {
		t.Fatalf("newApp with a broken key pair: %v", err)
	}
	if storeLocked(t, cfg.data) {
		t.Error("the store is still held after newApp failed")
	}
}
