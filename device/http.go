package device

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// newHTTPClient returns the client of ccsd's HTTPS endpoints:
// cfg.HTTPClient, or one of its own.
func newHTTPClient(cfg *Config) *http.Client {
	if cfg.HTTPClient != nil {
		return cfg.HTTPClient
	}
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			Proxy:               nil, // a local test server: never through a proxy
			TLSClientConfig:     cfg.TLS,
			TLSHandshakeTimeout: cfg.DialTimeout,
			IdleConnTimeout:     30 * time.Second,
		},
	}
}

// call sends one request to the HTTPS listener and returns the status and
// body. A 429 is retried after its Retry-After (ccsd's per-address rate
// of /checkin and /c2dm/register3), at most Config.RateLimitRetries times.
func (c *Client) call(ctx context.Context, op, method, path, ctype string, body []byte, auth bool) (int, []byte, error) {
	for try := 0; ; try++ {
		addrs, err := c.cfg.locate()
		if err != nil {
			return 0, nil, err
		}
		req, err := http.NewRequestWithContext(ctx, method, "https://"+addrs.HTTP+path, bytes.NewReader(body))
		if err != nil {
			return 0, nil, fmt.Errorf("device: %s: %w", op, err)
		}
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		if auth {
			s := c.State()
			req.Header.Set("Authorization", "AidLogin "+s.AndroidID+":"+s.SecurityToken)
		}
		resp, err := c.http.Do(req)
		if err != nil {
			return 0, nil, fmt.Errorf("device: %s: %w", op, err)
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if err != nil {
			return 0, nil, fmt.Errorf("device: %s: read answer: %w", op, err)
		}
		if resp.StatusCode != http.StatusTooManyRequests || try >= c.cfg.RateLimitRetries {
			return resp.StatusCode, b, nil
		}
		wait := retryAfter(resp.Header.Get("Retry-After"))
		c.cfg.Logger.Info("rate limited by ccsd; retrying", "op", op, "after", wait)
		if err := sleep(ctx, wait); err != nil {
			return 0, nil, err
		}
	}
}

// retryAfter reads a Retry-After in seconds (at least 1 s).
func retryAfter(h string) time.Duration {
	n, err := strconv.Atoi(strings.TrimSpace(h))
	if err != nil || n < 1 {
		n = 1
	}
	return time.Duration(min(n, 60)) * time.Second
}

// Checkin gets the device an identity (POST /checkin) unless it has one,
// and saves it. Register checks in by itself; Checkin is for a device that
// wants its identity before registering anything.
func (c *Client) Checkin(ctx context.Context) error {
	c.regMu.Lock()
	defer c.regMu.Unlock()
	if c.State().checkedIn() {
		return nil
	}
	return c.checkin(ctx)
}

// checkin makes a new identity and saves it, dropping any registration of
// an older one. The caller holds regMu.
func (c *Client) checkin(ctx context.Context) error {
	code, body, err := c.call(ctx, "checkin", "POST", "/checkin", "application/json", []byte("{}"), false)
	if err != nil {
		return err
	}
	var v struct {
		AndroidID     string `json:"android_id"`
		SecurityToken string `json:"security_token"`
		Error         string `json:"error"`
	}
	if code != http.StatusOK || json.Unmarshal(body, &v) != nil || v.AndroidID == "" || v.SecurityToken == "" {
		return &HTTPError{Op: "checkin", Status: code, Code: v.Error, Body: string(bytes.TrimSpace(body))}
	}
	c.cfg.Logger.Info("checked in", "android_id", v.AndroidID)
	return c.update(func(s *State) {
		*s = State{AndroidID: v.AndroidID, SecurityToken: v.SecurityToken}
	})
}

// Register registers app for sender on this device (POST /c2dm/register3)
// and returns the registration token, which the app server sends to. It
// checks in first if the device has no identity yet, and saves both. A
// registration already in the state is asked again anyway: ccsd answers
// the same token for the same device, sender and app, and the question
// proves the registration still exists.
//
// If ccsd no longer knows the saved device (AUTHENTICATION_FAILED: it was
// deleted after --unused-device-ttl, or the server has a new database),
// Register checks in again as a new device, dropping the old identity and
// its registrations from the state, and registers that one.
func (c *Client) Register(ctx context.Context, sender, app string) (string, error) {
	c.regMu.Lock()
	defer c.regMu.Unlock()
	if !c.State().checkedIn() {
		if err := c.checkin(ctx); err != nil {
			return "", err
		}
	}
	token, err := c.register3(ctx, "register", url.Values{"app": {app}, "sender": {sender}})
	var he *HTTPError
	if errors.As(err, &he) && he.Code == "AUTHENTICATION_FAILED" {
		c.cfg.Logger.Warn("ccsd does not know this device any more; checking in as a new one", "android_id", c.State().AndroidID)
		if err := c.checkin(ctx); err != nil {
			return "", err
		}
		token, err = c.register3(ctx, "register", url.Values{"app": {app}, "sender": {sender}})
	}
	if err != nil {
		return "", err
	}
	err = c.update(func(s *State) {
		if i := s.find(sender, app); i >= 0 {
			s.Registrations[i].Token = token
			return
		}
		s.Registrations = append(s.Registrations, Registration{Sender: sender, App: app, Token: token})
	})
	return token, err
}

// Unregister removes the registration of app for sender (register3 with
// delete=true): ccsd drops its queued messages and nacks later sends to
// it with DEVICE_UNREGISTERED. It is removed from the state too.
func (c *Client) Unregister(ctx context.Context, sender, app string) error {
	c.regMu.Lock()
	defer c.regMu.Unlock()
	if !c.State().checkedIn() {
		return ErrNotCheckedIn
	}
	if _, err := c.register3(ctx, "unregister", url.Values{"app": {app}, "sender": {sender}, "delete": {"true"}}); err != nil {
		return err
	}
	return c.update(func(s *State) {
		if i := s.find(sender, app); i >= 0 {
			s.Registrations = append(s.Registrations[:i], s.Registrations[i+1:]...)
		}
	})
}

// register3 posts the form and returns the value of token= (or deleted=).
func (c *Client) register3(ctx context.Context, op string, form url.Values) (string, error) {
	form.Set("device", c.State().AndroidID)
	code, body, err := c.call(ctx, op, "POST", "/c2dm/register3", "application/x-www-form-urlencoded", []byte(form.Encode()), true)
	if err != nil {
		return "", err
	}
	text := strings.TrimSpace(string(body))
	key, val, _ := strings.Cut(text, "=")
	if code != http.StatusOK || (key != "token" && key != "deleted") || val == "" {
		he := &HTTPError{Op: op, Status: code, Body: text}
		if key == "Error" {
			he.Code = val
		}
		return "", he
	}
	return val, nil
}

// Subscribe subscribes the registration token to topic NAME of its sender
// (POST /iid/v1/TOKEN/rel/topics/NAME, as an app's subscribeToTopic does).
// Messages to /topics/NAME then reach it with From "/topics/NAME".
func (c *Client) Subscribe(ctx context.Context, token, topic string) error {
	return c.topic(ctx, "subscribe", "POST", token, topic)
}

// Unsubscribe undoes Subscribe.
func (c *Client) Unsubscribe(ctx context.Context, token, topic string) error {
	return c.topic(ctx, "unsubscribe", "DELETE", token, topic)
}

func (c *Client) topic(ctx context.Context, op, method, token, topic string) error {
	if !c.State().checkedIn() {
		return ErrNotCheckedIn
	}
	path := "/iid/v1/" + url.PathEscape(token) + "/rel/topics/" + url.PathEscape(topic)
	code, body, err := c.call(ctx, op, method, path, "", nil, true)
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		var v struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(body, &v)
		return &HTTPError{Op: op, Status: code, Code: v.Error, Body: string(bytes.TrimSpace(body))}
	}
	return nil
}
