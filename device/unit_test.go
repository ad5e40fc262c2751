package device

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// TestDedupForgetsTheOldest: the window holds the last n keys and no more.
func TestDedupForgetsTheOldest(t *testing.T) {
	d := newDedup(3)
	for i := range 5 {
		d.add(strconv.Itoa(i))
		d.add(strconv.Itoa(i)) // adding twice takes no second slot
	}
	for i, want := range []bool{false, false, true, true, true} {
		if got := d.has(strconv.Itoa(i)); got != want {
			t.Errorf("has(%d) = %v, want %v", i, got, want)
		}
	}
	if len(d.set) != 3 {
		t.Errorf("%d keys held, want 3", len(d.set))
	}
}

// TestDedupGrowsWithUse: a new window holds nothing, and a few keys take a
// few slots, however large the window: a short-lived client does not pay
// for 10,000 ids up front.
func TestDedupGrowsWithUse(t *testing.T) {
	d := newDedup(DefaultDedupWindow)
	if cap(d.ring) != 0 {
		t.Fatalf("a new window holds %d slots, want none", cap(d.ring))
	}
	for i := range 3 {
		d.add(strconv.Itoa(i))
	}
	if cap(d.ring) > 8 || len(d.set) != 3 {
		t.Fatalf("3 keys: %d slots, %d keys held", cap(d.ring), len(d.set))
	}
}

// TestBackoffGrowsAndIsBounded: the ceiling doubles per attempt up to the
// maximum; the jitter takes a fraction of it, never under half the minimum.
func TestBackoffGrowsAndIsBounded(t *testing.T) {
	minD, maxD := 100*time.Millisecond, 2*time.Second
	for n, want := range []time.Duration{100, 200, 400, 800, 1600, 2000, 2000} {
		if got := backoff(minD, maxD, n, 1); got != want*time.Millisecond {
			t.Errorf("attempt %d ceiling %v, want %v", n, got, want*time.Millisecond)
		}
	}
	if got := backoff(minD, maxD, 3, 0.5); got != 400*time.Millisecond {
		t.Errorf("half of 800ms: %v", got)
	}
	if got := backoff(minD, maxD, 0, 0); got != 50*time.Millisecond {
		t.Errorf("floor: %v, want 50ms", got)
	}
	if got := backoff(minD, maxD, 200, 1); got != maxD {
		t.Errorf("attempt 200: %v, want %v (no overflow)", got, maxD)
	}
}

// TestUpstreamRender: the JSON a device sends, per docs/device-protocol.md.
func TestUpstreamRender(t *testing.T) {
	b, id, err := Upstream{Sender: "42", Category: "com.x", MessageID: "u-1", TTL: NowOrNever, Data: map[string]any{"a": "b"}}.render("gcm.googleapis.com")
	if err != nil || id != "u-1" {
		t.Fatal(id, err)
	}
	var v map[string]any
	_ = json.Unmarshal(b, &v)
	if v["to"] != "42@gcm.googleapis.com" || v["category"] != "com.x" || v["time_to_live"] != 0.0 || v["message_id"] != "u-1" {
		t.Errorf("rendered %s", b)
	}
	b, id, _ = Upstream{NotificationKey: "APA91b-k", Category: "com.x", CollapseKey: "inbox"}.render("gcm.googleapis.com")
	v = nil
	_ = json.Unmarshal(b, &v)
	if v["to"] != "APA91b-k" || v["collapse_key"] != "inbox" || id == "" || v["message_id"] != id || v["time_to_live"] != nil {
		t.Errorf("rendered %s", b)
	}
	for _, bad := range []Upstream{{Category: "c"}, {Sender: "1", NotificationKey: "k", Category: "c"}, {Sender: "1"}} {
		if _, _, err := bad.render("d"); err == nil {
			t.Errorf("%+v rendered", bad)
		}
	}
}

// TestStateFileIsPrivateAndAtomic: saved with mode 0600 even over a file
// that was world-readable, and read back the same.
func TestStateFileIsPrivateAndAtomic(t *testing.T) {
	path := filepath.Join(t.TempDir(), "device.json")
	if err := os.WriteFile(path, []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := State{AndroidID: "1", SecurityToken: "secret", Registrations: []Registration{{Sender: "2", App: "a", Token: "t"}}}
	if err := saveState(path, s); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode().Perm())
	}
	got, err := loadState(path)
	if err != nil || got.AndroidID != "1" || got.SecurityToken != "secret" || len(got.Registrations) != 1 || got.Registrations[0] != s.Registrations[0] {
		t.Errorf("loaded %+v, %v", got, err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
}

// TestEscape: JSON text with XML's special characters survives.
func TestEscape(t *testing.T) {
	if got := escape(`<a & "b">`+"\r", false); got != `&lt;a &amp; "b"&gt;&#xD;` {
		t.Errorf("text: %s", got)
	}
	if got := escape(`"x"`, true); got != `&quot;x&quot;` {
		t.Errorf("attr: %s", got)
	}
}
