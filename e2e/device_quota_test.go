package e2e

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The device limits below are set through CCSD_* environment variables,
// not flags: a build without them then starts anyway and the tests fail on
// what it does, not on its command line. t.Setenv keeps these tests
// sequential, so no parallel test's server inherits the settings.

// postCheckin posts to /checkin with c and returns the response, closed.
func (s *server) postCheckin(c *http.Client) *http.Response {
	s.t.Helper()
	resp, err := c.Post("https://"+s.Info.HTTPAddr+"/checkin", "application/json", strings.NewReader("{}"))
	if err != nil {
		s.t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// clientFrom returns an HTTPS client trusting s whose connections come from
// the local address ip (every 127/8 address is loopback on Linux).
func (s *server) clientFrom(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: s.tls, DialContext: d.DialContext}}
}

// TestCheckinLoopIsRateLimited: with the default limits, a script checking
// in in a loop gets 429 with Retry-After soon after the burst of 20, while
// another source address still checks in.
func TestCheckinLoopIsRateLimited(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	script := s.clientFrom("127.0.0.1")
	ok := 0
	var refused *http.Response
	for i := 0; i < 200 && refused == nil; i++ {
		switch resp := s.postCheckin(script); resp.StatusCode {
		case http.StatusOK:
			ok++
		case http.StatusTooManyRequests:
			refused = resp
		default:
			t.Fatalf("checkin %d: %s", i, resp.Status)
		}
	}
	if refused == nil {
		t.Fatalf("200 checkins in a loop from one address, none refused")
	}
	// The burst, plus what refilled at 1/s while the loop ran.
	if ok < 20 || ok > 30 {
		t.Errorf("%d checkins accepted before the first 429, want the burst of 20 (and a few refilled)", ok)
	}
	if n, err := strconv.Atoi(refused.Header.Get("Retry-After")); err != nil || n < 1 {
		t.Errorf("429 Retry-After %q, want whole seconds", refused.Header.Get("Retry-After"))
	}
	if resp := s.postCheckin(s.clientFrom("127.0.0.2")); resp.StatusCode != http.StatusOK {
		t.Errorf("checkin from another address: %s", resp.Status)
	}
}

// TestDeviceRegistrationCap: with the default cap, one device registers
// 100 apps and is refused the 101st with Error=TOO_MANY_REGISTRATIONS; an
// app it has still gets its token.
func TestDeviceRegistrationCap(t *testing.T) {
	t.Setenv("CCSD_REGISTER_BURST", "0") // 101 registrations in a row
	s := startServer(t)
	d := s.checkin()
	var first string
	for i := range 100 {
		reg := s.register(d, s.Sender, "com.example.app"+strconv.Itoa(i))
		if i == 0 {
			first = reg
		}
	}
	code, body := s.register3(d, url.Values{"app": {"com.example.app100"}, "sender": {s.Sender}})
	if code != http.StatusBadRequest || body != "Error=TOO_MANY_REGISTRATIONS" {
		t.Errorf("101st app: %d %q, want 400 Error=TOO_MANY_REGISTRATIONS", code, body)
	}
	if reg := s.register(d, s.Sender, "com.example.app0"); reg != first {
		t.Errorf("re-registering an app at the cap gave %q, want its token %q", reg, first)
	}
}

// TestUnusedDeviceExpires: a device that registered an app but never
// logged in over XMPP is deleted after --unused-device-ttl: its
// credentials stop working. One that logged in and registered stays.
func TestUnusedDeviceExpires(t *testing.T) {
	t.Setenv("CCSD_UNUSED_DEVICE_TTL", "2s")
	t.Setenv("CCSD_DEVICE_SWEEP_INTERVAL", "200ms")
	s := startServer(t)
	// used is checked in first, so the pass that judges silent has judged
	// used already (the sweep goes oldest first).
	used := s.checkin()
	s.register(used, s.Sender, "com.example")
	s.deviceConn(used).close()
	silent := s.checkin()
	s.register(silent, s.Sender, "com.example")

	form := url.Values{"app": {"com.example"}, "sender": {s.Sender}}
	checkFor(t, 30*time.Second, 250*time.Millisecond, func() error {
		code, body := s.register3(silent, form)
		if code == http.StatusUnauthorized && body == "Error=AUTHENTICATION_FAILED" {
			return nil
		}
		// 429: the poll itself ran into the register rate; try again.
		if code != http.StatusOK && code != http.StatusTooManyRequests {
			t.Fatalf("register3 of the unused device: %d %q", code, body)
		}
		return fmt.Errorf("the device that never logged in still authenticates after its 2 s TTL: %d %q", code, body)
	})
	if code, body := s.register3(used, form); code != http.StatusOK || !strings.HasPrefix(body, "token=") {
		t.Errorf("the device that logged in and registered was expired: %d %q", code, body)
	}
}
