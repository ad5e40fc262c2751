package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/ccsd/ccsd/device"
)

// doListen runs the device's session and prints each message; with
// --count it ends once that many were printed (and acked).
func (c *deviceCmd) doListen(ctx context.Context, cfg device.Config, log zerolog.Logger) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var mu sync.Mutex
	seen := 0
	cfg.Handler = device.HandlerFunc(func(_ context.Context, m *device.Message) error {
		mu.Lock()
		defer mu.Unlock()
		if c.count > 0 && seen >= c.count {
			return errors.New("--count reached") // nacked: left for the next listener
		}
		if err := c.print(m); err != nil {
			return err
		}
		seen++
		if c.count > 0 && seen == c.count {
			cancel() // Run acks this message before it returns
		}
		return nil
	})
	d, err := device.New(cfg)
	if err != nil {
		return err
	}
	s := d.State()
	if s.AndroidID == "" {
		return fmt.Errorf("no device in %s: run \"ccsd device register --sender ID --app PKG\" first", cfg.StateFile)
	}
	log.Info().Str("android_id", s.AndroidID).Int("registrations", len(s.Registrations)).Str("state", cfg.StateFile).Msg("listening (Ctrl-C to stop)")
	err = d.Run(ctx)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// print writes one message to stdout: with --json the payload as
// received on one line, else a line for people.
func (c *deviceCmd) print(m *device.Message) error {
	if c.json {
		var b bytes.Buffer
		if err := json.Compact(&b, m.Raw); err != nil {
			b.Reset()
			b.Write(m.Raw)
		}
		b.WriteByte('\n')
		_, err := c.stdout.Write(b.Bytes())
		return err
	}
	_, err := fmt.Fprintln(c.stdout, pretty(m))
	return err
}

// pretty is a message as one readable line:
// "12:00:01 message m-1 from 603017904945 to com.example.chat: hello=world".
func pretty(m *device.Message) string {
	var b strings.Builder
	b.WriteString(time.Now().Format(time.TimeOnly))
	if m.Deleted {
		fmt.Fprintf(&b, " deleted_messages %s for %s: ccsd dropped queued messages of this app; sync with the app server", m.ID, m.Category)
		return b.String()
	}
	fmt.Fprintf(&b, " message %s from %s to %s", m.ID, m.From, m.Category)
	if m.NotificationKey != "" && m.NotificationKey != m.From {
		fmt.Fprintf(&b, " (group %s)", m.NotificationKey)
	}
	if m.CollapseKey != "" {
		fmt.Fprintf(&b, " collapse_key=%s", m.CollapseKey)
	}
	b.WriteString(":")
	keys := make([]string, 0, len(m.Data))
	for k := range m.Data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v, ok := m.Data[k].(string)
		if !ok {
			j, _ := json.Marshal(m.Data[k])
			v = string(j)
		}
		fmt.Fprintf(&b, " %s=%s", k, v)
	}
	if len(m.Notification) > 0 {
		fmt.Fprintf(&b, " notification=%s", m.Notification)
	}
	return b.String()
}
