package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ccsd/ccsd/device"
)

// sendDataFlag is --data of "ccsd device send": k=v is a payload field, as
// the command line has it, and a value without "=" is the data
// directory, as for every other device command.
type sendDataFlag struct {
	dir    *string
	fields map[string]any
}

// String is the data directory (the flag package shows it as the default).
func (f *sendDataFlag) String() string {
	if f.dir == nil {
		return ""
	}
	return *f.dir
}

// Set records a field or the directory.
func (f *sendDataFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok {
		*f.dir = v
		return nil
	}
	if k == "" {
		return fmt.Errorf("payload field %q has no key (want k=v)", v)
	}
	if _, dup := f.fields[k]; dup {
		return fmt.Errorf("payload field %q given twice", k)
	}
	f.fields[k] = val
	return nil
}

// doSend connects, sends one upstream message and waits for ccsd's answer.
func (c *deviceCmd) doSend(ctx context.Context, cfg device.Config) error {
	unreachable := make(chan error, 1)
	cfg.OnDisconnect = func(err error) {
		select {
		case unreachable <- err:
		default:
		}
	}
	d, err := device.New(cfg)
	if err != nil {
		return err
	}
	u, err := c.upstream(d.State(), cfg.StateFile)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	ran := make(chan error, 1)
	go func() { ran <- d.Run(runCtx) }()
	id, err := sendOnce(ctx, d, u, unreachable, ran)
	stop()
	if runErr := <-ran; err == nil && runErr != nil && !errors.Is(runErr, context.Canceled) {
		err = runErr
	}
	var nack *device.NackError
	if errors.As(err, &nack) {
		return fmt.Errorf("ccsd nacked %s: %s (%s)", nack.MessageID, nack.Code, nack.Description)
	}
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(c.stdout, id)
	return err
}

// sendOnce waits for the first session, then sends u on it. A command
// does not wait out a dead server: the first failed connection attempt
// (unreachable) or Run ending (ran; it then returned its error, which is
// put back for the caller) is the answer.
func sendOnce(ctx context.Context, d *device.Client, u device.Upstream, unreachable, ran chan error) (string, error) {
	select {
	case <-d.Online():
	case err := <-unreachable:
		return "", fmt.Errorf("cannot reach ccsd: %w", err)
	case err := <-ran:
		ran <- err
		return "", err
	case <-ctx.Done():
		return "", fmt.Errorf("no session with ccsd: %w", ctx.Err())
	}
	return d.Send(ctx, u)
}

// upstream is the message the flags describe. --to is a sender when the
// device has a registration for it or it is a number (a project number),
// otherwise a notification_key.
func (c *deviceCmd) upstream(s device.State, file string) (device.Upstream, error) {
	u := device.Upstream{Category: c.app, MessageID: c.id, CollapseKey: c.collapseKey, Data: c.fields}
	var ofSender []device.Registration
	for _, r := range s.Registrations {
		if r.Sender == c.to {
			ofSender = append(ofSender, r)
		}
	}
	if len(ofSender) > 0 || isDigits(c.to) {
		u.Sender = c.to
	} else {
		u.NotificationKey = c.to
	}
	switch {
	case c.ttl == 0:
		u.TTL = device.NowOrNever
	case c.ttl > 0:
		u.TTL = time.Duration(c.ttl) * time.Second
	}
	if u.Category != "" {
		return u, nil
	}
	if len(ofSender) == 1 {
		u.Category = ofSender[0].App
		return u, nil
	}
	r, err := onlyRegistration(s, file)
	if err != nil {
		return u, fmt.Errorf("which app sends? name it with --app (%w)", err)
	}
	u.Category = r.App
	return u, nil
}

func isDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}
