package e2e

import (
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// dialIdleFrom opens n TCP connections from source ip to addr that never
// send a byte (closed when the test ends).
func dialIdleFrom(t *testing.T, ip, addr string, n int) []net.Conn {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	conns := make([]net.Conn, 0, n)
	for i := 0; i < n; i++ {
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		t.Cleanup(func() { c.Close() })
		conns = append(conns, c)
	}
	return conns
}

// openAfter polls conns until every one the server will close at once is
// closed, and returns how many are still open after within.
func openAfter(conns []net.Conn, want int, within time.Duration) int {
	open := conns
	for deadline := time.Now().Add(within); len(open) > want && time.Now().Before(deadline); {
		still := open[:0:0]
		for _, c := range open {
			_ = c.SetReadDeadline(time.Now().Add(time.Millisecond))
			if _, err := c.Read(make([]byte, 1)); errors.Is(err, os.ErrDeadlineExceeded) {
				still = append(still, c)
			}
		}
		open = still
	}
	return len(open)
}

// TestIdleSocketsFromOneAddress: one address opening many sockets that never
// start TLS, on the HTTPS and the device ports, gets only the per-address
// number of them; the rest are closed at once, and another address's
// /checkin and device TLS handshake still answer.
func TestIdleSocketsFromOneAddress(t *testing.T) {
	const perAddr, n = 8, 80
	s := startServer(t, "--max-unauth-per-addr", "8", "--max-http-conns-per-addr", "8",
		"--tls-handshake-timeout", "1m") // the limits, not the timeouts, must free the ports
	httpIdle := dialIdleFrom(t, "127.0.0.1", s.Info.HTTPAddr, n)
	deviceIdle := dialIdleFrom(t, "127.0.0.1", s.Info.DeviceAddr, n)
	// HTTPS itself closes idle sockets after its ReadHeaderTimeout (10s):
	// the refused ones must be closed well before.
	if open := openAfter(httpIdle, perAddr, 5*time.Second); open != perAddr {
		t.Fatalf("HTTPS: %d of %d idle sockets from one address still open, want %d", open, n, perAddr)
	}
	if open := openAfter(deviceIdle, perAddr, 5*time.Second); open != perAddr {
		t.Fatalf("device port: %d of %d idle sockets from one address still open, want %d", open, n, perAddr)
	}

	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: 5 * time.Second}
	other := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: s.tls, DialContext: d.DialContext}}
	resp, err := other.Post("https://"+s.Info.HTTPAddr+"/checkin", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatalf("checkin from another address: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("checkin from another address: %s", resp.Status)
	}
	c, err := tls.DialWithDialer(d, "tcp", s.Info.DeviceAddr, s.tls)
	if err != nil {
		t.Fatalf("device TLS from another address: %v", err)
	}
	c.Close()
}

// TestLoginBudgetShared: the real binary has ONE failed-login limiter: wrong
// API keys on /gcm/send spend the address's budget, /gcm/send then answers
// 429 with Retry-After, and the same address's XMPP login (even with the
// right key) gets temporary-auth-failure, while another address's right key
// is still accepted.
func TestLoginBudgetShared(t *testing.T) {
	s := startServer(t, "--login-failures-per-addr", "3")
	post := func(key string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("POST", "https://"+s.Info.HTTPAddr+"/gcm/send", strings.NewReader(`{"to":"x"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "key="+key)
		resp, err := s.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	for i := 0; i < 3; i++ {
		if code := post("wrong").StatusCode; code != http.StatusUnauthorized {
			t.Fatalf("wrong key %d: %d, want 401", i, code)
		}
	}
	if resp := post("wrong"); resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("wrong key past the budget: %d Retry-After %q, want 429 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	_, err := dial(t, s.Info.XMPPAddr, s.tls, s.Sender, s.APIKey, "gcm.googleapis.com")
	if err == nil || !strings.Contains(err.Error(), "temporary-auth-failure") {
		t.Fatalf("XMPP login from the throttled address: %v, want temporary-auth-failure", err)
	}
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: 5 * time.Second}
	other := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: s.tls, DialContext: d.DialContext}}
	req, _ := http.NewRequest("POST", "https://"+s.Info.HTTPAddr+"/gcm/send", strings.NewReader(`{"to":"x"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "key="+s.APIKey)
	resp, err := other.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusUnauthorized {
		t.Fatalf("right key from another address: %d", resp.StatusCode)
	}
}
