package e2e

import (
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// checkFor calls f every interval until it returns nil, and fails the test
// with f's last error once total has passed (nats-server's checkFor). Tests
// wait for effects with it, never with a fixed sleep.
func checkFor(t testing.TB, total, interval time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(total)
	var err error
	for {
		if err = f(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", total, err)
		}
		time.Sleep(interval)
	}
}

var markers atomic.Uint64

func newMarker() string { return "marker-" + strconv.FormatUint(markers.Add(1), 10) }

func isMarker(id string) bool { return strings.HasPrefix(id, "marker-") }

// downMarker proves what is queued for a device without waiting for
// silence: app sends a marker to reg, and dev's queue is delivered in
// order, so whatever dev receives before the marker is everything that was
// queued before it. It returns those messages (markers of earlier calls
// left out) and acks the marker.
func downMarker(t *testing.T, app, dev *client, reg string) []msg {
	t.Helper()
	id := newMarker()
	app.send(`{"to":"` + reg + `","message_id":"` + id + `"}`)
	if a := app.expect(wait); a.str("message_type") != "ack" || a.str("message_id") != id {
		t.Fatalf("marker %s answered %v", id, a.json)
	}
	return untilMarker(t, dev, id, func(m msg) { dev.ack(m.str("message_id")) })
}

// upMarker is downMarker for a sender's upstream queue: dev (registered
// for sender's category) sends a marker upstream, and what app receives
// before it is all that was queued for the app server before it. It acks
// the marker only.
func upMarker(t *testing.T, dev upstreamDevice, app *client, sender, category string) []msg {
	t.Helper()
	id := newMarker()
	dev.sendAcked(t, sender, category, id)
	return untilMarker(t, app, id, func(m msg) { app.ackUpstream(m.str("from"), m.str("message_id")) })
}

// upstreamDevice is a device that sends an upstream message and waits for
// ccsd's ack: the raw client or a device.Client (pkgDevice).
type upstreamDevice interface {
	sendAcked(t *testing.T, sender, category, id string)
}

// sendAcked sends message id upstream and fails the test unless ccsd
// acks it.
func (c *client) sendAcked(t *testing.T, sender, category, id string) {
	t.Helper()
	c.send(`{"to":"` + sender + `@gcm.googleapis.com","category":"` + category + `","message_id":"` + id + `"}`)
	if a := c.expect(wait); a.str("message_type") != "ack" || a.str("message_id") != id {
		t.Fatalf("upstream %s answered %v", id, a.json)
	}
}

// untilMarker reads c until the marker id and returns what came before it
// except older markers, which it acks with ack.
func untilMarker(t *testing.T, c *client, id string, ack func(msg)) []msg {
	t.Helper()
	var before []msg
	for {
		m := c.expect(wait)
		switch mid := m.str("message_id"); {
		case mid == id:
			ack(m)
			return before
		case isMarker(mid):
			ack(m)
		default:
			before = append(before, m)
		}
	}
}

// msgIDs lists the message_ids of ms.
func msgIDs(ms []msg) string {
	var out []string
	for _, m := range ms {
		out = append(out, m.str("message_id"))
	}
	return strings.Join(out, ",")
}

// errIDs is the error checkFor retries on when a session got other
// messages than it should.
func errIDs(what string, got []msg, want string) error {
	if g := msgIDs(got); g != want {
		return fmt.Errorf("%s got %q, want %q", what, g, want)
	}
	return nil
}
