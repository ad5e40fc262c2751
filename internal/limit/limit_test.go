package limit

import (
	"strconv"
	"testing"
	"time"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestRateBurstThenRefill(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	r := NewRate(20, time.Second, 0)
	r.now = c.now
	for i := 0; i < 20; i++ {
		if !r.Allow("a") {
			t.Fatalf("event %d of the burst refused", i)
		}
	}
	ok, retry := r.Reserve("a")
	if ok || retry != time.Second {
		t.Fatalf("21st event: ok=%v retry=%v, want refused with 1s", ok, retry)
	}
	if !r.Allow("b") {
		t.Fatal("another key is limited by a's use")
	}
	c.t = c.t.Add(1500 * time.Millisecond)
	if !r.Allow("a") {
		t.Fatal("no event after 1.5s at 1/s")
	}
	if r.Allow("a") {
		t.Fatal("a second event after 1.5s at 1/s")
	}
}

func TestRateDisabled(t *testing.T) {
	for _, r := range []*Rate{nil, NewRate(0, time.Second, 0), PerMinute(0, 0)} {
		for i := 0; i < 1000; i++ {
			if !r.Allow("x") {
				t.Fatal("disabled limiter refused")
			}
		}
	}
}

func TestRateBoundedKeys(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	r := NewRate(2, time.Hour, 100)
	r.now = c.now
	for i := 0; i < 10000; i++ {
		r.Allow(strconv.Itoa(i))
		if i%7 == 0 {
			c.t = c.t.Add(time.Millisecond)
		}
	}
	if n := r.Len(); n > 100 {
		t.Fatalf("%d keys remembered, bound is 100", n)
	}
}

func TestCount(t *testing.T) {
	c := NewCount(2)
	if !c.Acquire("a") || !c.Acquire("a") {
		t.Fatal("slots within the limit refused")
	}
	if c.Acquire("a") {
		t.Fatal("third slot granted")
	}
	c.Release("a")
	if !c.Acquire("a") {
		t.Fatal("released slot not reusable")
	}
	c.Release("a")
	c.Release("a")
	if n := c.InUse("a"); n != 0 || len(c.m) != 0 {
		t.Fatalf("in use %d, table %d after releasing all", n, len(c.m))
	}
}

func TestAddrKey(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:5228":             "127.0.0.1",
		"[::ffff:10.1.2.3]:1":        "10.1.2.3",
		"[2001:db8:1:2:3:4:5:6]:443": "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::1":       "2001:db8:1:2::/64",
		"[fe80::1%eth0]:80":          "fe80::/64",
		"not-an-ip":                  "not-an-ip",
	} {
		if got := AddrKey(in); got != want {
			t.Errorf("AddrKey(%q) = %q, want %q", in, got, want)
		}
	}
}
