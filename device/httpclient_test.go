package device

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

// countingTransport counts the requests that went through it.
type countingTransport struct {
	n    atomic.Int64
	next http.RoundTripper
}

func (t *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	t.n.Add(1)
	return t.next.RoundTrip(r)
}

// TestHTTPClientAndNoRateRetry: Config.HTTPClient makes the HTTPS calls,
// and a negative RateLimitRetries returns the first 429 at once, as an
// *HTTPError, instead of waiting out its Retry-After.
func TestHTTPClientAndNoRateRetry(t *testing.T) {
	var served atomic.Int64
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		served.Add(1)
		w.Header().Set("Retry-After", "30")
		http.Error(w, `{"error":"rate"}`, http.StatusTooManyRequests)
	}))
	defer srv.Close()
	tr := &countingTransport{next: srv.Client().Transport}
	c, err := New(Config{
		Addrs:            Addrs{HTTP: srv.Listener.Addr().String()},
		HTTPClient:       &http.Client{Transport: tr},
		RateLimitRetries: -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	err = c.Checkin(context.Background())
	var he *HTTPError
	if !errors.As(err, &he) || he.Status != http.StatusTooManyRequests {
		t.Fatalf("Checkin = %v, want the 429 as an *HTTPError", err)
	}
	if tr.n.Load() != 1 || served.Load() != 1 {
		t.Fatalf("%d requests through Config.HTTPClient, %d served; want 1 and 1 (no retry)", tr.n.Load(), served.Load())
	}
}
