package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	ccsdevice "github.com/ccsd/ccsd/device"
)

// loopbackDialer returns a dialer that refuses, at connect time, any
// address that is not loopback, whatever a name resolved to.
func loopbackDialer() *net.Dialer {
	return &net.Dialer{
		Timeout: 10 * time.Second,
		Control: func(_, address string, _ syscall.RawConn) error {
			host, _, err := net.SplitHostPort(address)
			if err != nil {
				return err
			}
			host, _, _ = strings.Cut(host, "%")
			if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
				return fmt.Errorf("refusing to connect to %s: not a loopback address", address)
			}
			return nil
		},
	}
}

// checkLoopback reports an error unless addr is host:port with host
// "localhost" or a loopback IP literal.
func checkLoopback(flag, addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%s %q: %w", flag, addr, err)
	}
	if port == "" {
		return fmt.Errorf("%s %q: no port", flag, addr)
	}
	if strings.EqualFold(host, "localhost") {
		return nil
	}
	h, _, _ := strings.Cut(host, "%")
	if ip := net.ParseIP(h); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("%s %q is not a loopback address: ccsbench measures a ccsd on this machine only (127.0.0.1, ::1 or localhost)", flag, addr)
}

// httpAPI talks to ccsd's HTTPS (device and group) and admin endpoints.
// It keeps one HTTPS client per source address of the pool and takes them
// in turn, so that keep-alive connections do not pin every request to one
// address. Each endpoint takes its own turn: with one shared turn, a setup
// that alternates checkin and register3 would put every checkin on half
// the addresses and meet ccsd's per-address limits twice as soon.
type httpAPI struct {
	httpsAddr string
	adminAddr string
	tlsCls    []*http.Client
	next      [endpoints]atomic.Uint64
	plain     *http.Client
}

// The HTTPS endpoints, each with its own round-robin turn.
const (
	epCheckin = iota
	epRegister
	epGroups
	endpoints
)

func newHTTPAPI(httpsAddr, adminAddr string, tlsConf *tls.Config, pool *dialPool, conns int) *httpAPI {
	noRedirect := func(*http.Request, []*http.Request) error { return errors.New("ccsbench follows no redirects") }
	mk := func(tc *tls.Config, dial func(context.Context, string, string) (net.Conn, error), idle int) *http.Client {
		return &http.Client{
			Timeout:       15 * time.Second,
			CheckRedirect: noRedirect,
			Transport: &http.Transport{
				Proxy:               nil,
				DialContext:         dial,
				TLSClientConfig:     tc,
				MaxIdleConnsPerHost: idle,
				IdleConnTimeout:     30 * time.Second,
				TLSHandshakeTimeout: 10 * time.Second,
				ForceAttemptHTTP2:   false,
			},
		}
	}
	h := &httpAPI{httpsAddr: httpsAddr, adminAddr: adminAddr, plain: mk(nil, pool.dialers[0].DialContext, conns)}
	per := max(1, conns/len(pool.dialers))
	for _, d := range pool.dialers {
		h.tlsCls = append(h.tlsCls, mk(tlsConf, d.DialContext, per))
	}
	return h
}

// https returns the HTTPS client of the next source address for endpoint
// ep.
func (h *httpAPI) https(ep int) *http.Client {
	if len(h.tlsCls) == 1 {
		return h.tlsCls[0]
	}
	return h.tlsCls[(h.next[ep].Add(1)-1)%uint64(len(h.tlsCls))]
}

func (h *httpAPI) close() {
	for _, c := range h.tlsCls {
		c.CloseIdleConnections()
	}
	h.plain.CloseIdleConnections()
}

// do sends a request and returns the status and body (at most 1 MiB).
func do(c *http.Client, req *http.Request) (int, []byte, error) {
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, b, err
}

// createSender creates a sender through the admin endpoint.
func (h *httpAPI) createSender(ctx context.Context) (id, key string, err error) {
	req, err := http.NewRequestWithContext(ctx, "POST", "http://"+h.adminAddr+"/admin/senders", strings.NewReader("{}"))
	if err != nil {
		return "", "", err
	}
	req.Header.Set("Content-Type", "application/json")
	code, body, err := do(h.plain, req)
	if err != nil {
		return "", "", fmt.Errorf("admin create sender: %w", err)
	}
	var v struct {
		SenderID string `json:"sender_id"`
		APIKey   string `json:"api_key"`
	}
	if code != http.StatusCreated || json.Unmarshal(body, &v) != nil || v.SenderID == "" || v.APIKey == "" {
		return "", "", fmt.Errorf("admin create sender: %d %s", code, bytes.TrimSpace(body))
	}
	return v.SenderID, v.APIKey, nil
}

// deleteSender deletes the sender the run created, with its
// registrations (DELETE /admin/senders/ID?force=true), so that runs leave
// nothing behind. A ccsd from before that endpoint (a BEFORE binary of
// bench-load) answers 405: the sender is revoked instead.
func (h *httpAPI) deleteSender(ctx context.Context, id string) error {
	req, err := http.NewRequestWithContext(ctx, "DELETE", "http://"+h.adminAddr+"/admin/senders/"+url.PathEscape(id)+"?force=true", nil)
	if err != nil {
		return err
	}
	code, body, err := do(h.plain, req)
	switch {
	case err != nil:
		return err
	case code == http.StatusMethodNotAllowed:
		return h.revokeSender(ctx, id)
	case code != http.StatusOK:
		return fmt.Errorf("admin delete sender: %d %s", code, bytes.TrimSpace(body))
	}
	return nil
}

// revokeSender revokes the sender the run created.
func (h *httpAPI) revokeSender(ctx context.Context, id string) error {
	req, err := http.NewRequestWithContext(ctx, "POST", "http://"+h.adminAddr+"/admin/senders/"+url.PathEscape(id)+"/revoke", nil)
	if err != nil {
		return err
	}
	code, body, err := do(h.plain, req)
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return fmt.Errorf("admin revoke sender: %d %s", code, bytes.TrimSpace(body))
	}
	return nil
}

// healthz returns the instance id the admin endpoint reports.
func (h *httpAPI) healthz(ctx context.Context) (string, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+h.adminAddr+"/healthz", nil)
	if err != nil {
		return "", err
	}
	code, body, err := do(h.plain, req)
	if err != nil {
		return "", err
	}
	var v struct {
		Instance string `json:"instance"`
	}
	if code != http.StatusOK || json.Unmarshal(body, &v) != nil {
		return "", fmt.Errorf("healthz: %d %s", code, bytes.TrimSpace(body))
	}
	return v.Instance, nil
}

// Devices are checked in and registered with package device, the client
// of ccsd's device side, so that ccsbench's devices are made as any
// developer's are. Two settings keep ccsbench's setup behaviour: every
// device.Client shares one HTTP client (devices), whose requests take the
// source addresses of the pool in turn per endpoint (roundRobin), and
// RateLimitRetries < 0 makes the first 429 end the setup with a hint
// (setupError) where a phone would wait out Retry-After. The device
// sessions stay ccsbench's own (xmpp.go): they are the measured hot loop,
// with one reader per session, acks batched into one write, and no
// goroutine or allocation per message, where package device hands each
// message to its handler goroutine and writes each ack on its own.

// devices returns the device.Config of every device ccsbench makes.
func (h *httpAPI) devices() ccsdevice.Config {
	return ccsdevice.Config{
		Addrs: ccsdevice.Addrs{HTTP: h.httpsAddr},
		HTTPClient: &http.Client{
			Timeout:       15 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return errors.New("ccsbench follows no redirects") },
			Transport:     roundRobin{h},
		},
		RateLimitRetries: -1,
		DedupWindow:      1, // these clients never Run: no delivery to remember
	}
}

// roundRobin sends each request over the HTTPS client of the next source
// address for its endpoint (checkin or register3).
type roundRobin struct{ h *httpAPI }

// RoundTrip sends r from the next source address of its endpoint.
func (rr roundRobin) RoundTrip(r *http.Request) (*http.Response, error) {
	ep := epRegister
	if r.URL.Path == "/checkin" {
		ep = epCheckin
	}
	return rr.h.https(ep).Transport.RoundTrip(r)
}

// checkin creates a device identity and returns the device's client.
func (h *httpAPI) checkin(ctx context.Context) (*ccsdevice.Client, error) {
	c, err := ccsdevice.New(h.devices())
	if err != nil {
		return nil, err
	}
	if err := c.Checkin(ctx); err != nil {
		return nil, httpFailure("checkin", err)
	}
	return c, nil
}

// register registers app on the device for sender and returns the
// registration id.
func (h *httpAPI) register(ctx context.Context, c *ccsdevice.Client, sender, app string) (string, error) {
	reg, err := c.Register(ctx, sender, app)
	if err != nil {
		return "", httpFailure("register3", err)
	}
	return reg, nil
}

// httpFailure words a refusal as "OP: STATUS BODY", which setupError
// reads for the 429 hint.
func httpFailure(op string, err error) error {
	var he *ccsdevice.HTTPError
	if errors.As(err, &he) {
		return fmt.Errorf("%s: %d %s", op, he.Status, he.Body)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// createGroup creates a device group and returns its notification_key.
func (h *httpAPI) createGroup(ctx context.Context, sender, apiKey, name string, regs []string) (string, error) {
	b, err := json.Marshal(map[string]any{"operation": "create", "notification_key_name": name, "registration_ids": regs})
	if err != nil {
		return "", err
	}
	req, err := http.NewRequestWithContext(ctx, "POST", "https://"+h.httpsAddr+"/gcm/notification", bytes.NewReader(b))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "key="+apiKey)
	req.Header.Set("project_id", sender)
	code, body, err := do(h.https(epGroups), req)
	if err != nil {
		return "", fmt.Errorf("create group: %w", err)
	}
	var v struct {
		Key string `json:"notification_key"`
	}
	if code != http.StatusOK || json.Unmarshal(body, &v) != nil || v.Key == "" {
		return "", fmt.Errorf("create group %s: %d %s", name, code, bytes.TrimSpace(body))
	}
	return v.Key, nil
}
