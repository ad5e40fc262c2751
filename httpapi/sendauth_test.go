package httpapi

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ccsd/ccsd/auth"
	"github.com/ccsd/ccsd/fanout"
	"github.com/ccsd/ccsd/internal/limit"
	"github.com/ccsd/ccsd/store/bolt"
)

// nopRouter accepts every message: these tests are about the key check.
type nopRouter struct{}

func (nopRouter) Send(context.Context, string, []byte) fanout.SendResult { return fanout.SendResult{} }

// clientFrom returns an HTTPS client of ts whose connections come from ip.
func clientFrom(ts *httptest.Server, ip string) *http.Client {
	c := ts.Client()
	tr := c.Transport.(*http.Transport).Clone()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	tr.DialContext = d.DialContext
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func postSend(t *testing.T, c *http.Client, url, key string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("POST", url+"/gcm/send", strings.NewReader(`{"to":"REG"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "key="+key)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// TestSendKeyThrottle: wrong API keys from one address, even in parallel,
// spend its failure budget; past it /gcm/send answers 429 with Retry-After
// and a JSON error, before checking the key; another address is unaffected.
func TestSendKeyThrottle(t *testing.T) {
	const budget, n = 5, 40
	db, err := bolt.Open(filepath.Join(t.TempDir(), "ccsd.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	senders := auth.NewSenders(db)
	_, key, err := senders.Create("123456789012")
	if err != nil {
		t.Fatal(err)
	}
	api := New(Config{Devices: auth.NewDevices(db), Logger: zerolog.Nop()})
	NewSendHandler(nopRouter{}, senders, limit.NewLogins(budget, 0), zerolog.Nop()).Mount(api)
	ts := httptest.NewTLSServer(api)
	t.Cleanup(ts.Close)

	c := clientFrom(ts, "127.0.0.1")
	codes := make(chan *http.Response, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			codes <- postSend(t, c, ts.URL, "wrong-"+strconv.Itoa(i))
		}(i)
	}
	wg.Wait()
	close(codes)
	count := map[int]int{}
	for resp := range codes {
		count[resp.StatusCode]++
		if resp.StatusCode != http.StatusTooManyRequests {
			continue
		}
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || s < 1 {
			t.Fatalf("429 with Retry-After %q", resp.Header.Get("Retry-After"))
		}
		var body struct{ Error string }
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.Error == "" ||
			!strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			t.Fatalf("429 body: %v %q", err, body.Error)
		}
	}
	// The budget refills at budget/min: a slow run may earn one more.
	if count[http.StatusUnauthorized] < budget || count[http.StatusUnauthorized] > budget+1 ||
		count[http.StatusUnauthorized]+count[http.StatusTooManyRequests] != n {
		t.Fatalf("answers %v: want %d x 401 then 429", count, budget)
	}
	if code := postSend(t, clientFrom(ts, "127.0.0.2"), ts.URL, key).StatusCode; code != http.StatusOK {
		t.Fatalf("right key from another address: %d", code)
	}
	if code := postSend(t, clientFrom(ts, "127.0.0.2"), ts.URL, "wrong").StatusCode; code != http.StatusUnauthorized {
		t.Fatalf("wrong key from another address: %d", code)
	}
}
