package e2e

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	goxmpp "github.com/xmppo/go-xmpp"
)

// conns lists GET /admin/connections.
func (s *server) conns() []connJSON {
	s.t.Helper()
	code, body := s.adminDo("GET", "/admin/connections", "")
	var out []connJSON
	if code != http.StatusOK || json.Unmarshal([]byte(body), &out) != nil {
		s.t.Fatalf("GET /admin/connections: %d %s", code, body)
	}
	return out
}

// waitConns polls GET /admin/connections until it lists n connections: a
// client's login returns once it is bound, a moment before ccsd opens its
// stream.
func (s *server) waitConns(n int) []connJSON {
	s.t.Helper()
	var list []connJSON
	checkFor(s.t, wait, 10*time.Millisecond, func() error {
		if list = s.conns(); len(list) != n {
			return fmt.Errorf("%d connections listed, want %d: %+v", len(list), n, list)
		}
		return nil
	})
	return list
}

// connJSON is one entry of GET /admin/connections.
type connJSON struct {
	ID, Kind, Identity, Remote string
	Since                      time.Time
	Pending                    int
	InFlight                   int `json:"in_flight"`
	Draining                   bool
}

// drain posts to a drain endpoint and returns the count it answered.
func (s *server) drain(path string) int {
	s.t.Helper()
	code, body := s.adminDo("POST", path, "")
	var d struct{ Drained int }
	if code != http.StatusAccepted || json.Unmarshal([]byte(body), &d) != nil {
		s.t.Fatalf("POST %s: %d %s", path, code, body)
	}
	return d.Drained
}

// appEvent is what a connection of reconnectingApp read: a CCS message, or
// the end of its stream (err).
type appEvent struct {
	conn int
	m    map[string]any
	err  error
}

// reconnectingApp is an app server built on go-xmpp that does what spec §7
// asks of one: on CONNECTION_DRAINING it opens a new connection and sends
// everything new there, keeps reading the old one, and resends on the new
// connection what the old one nacked CONNECTION_DRAINING.
type reconnectingApp struct {
	t      *testing.T
	s      *server
	conns  []*goxmpp.Client
	cur    int
	events chan appEvent
}

func newReconnectingApp(t *testing.T, s *server) *reconnectingApp {
	a := &reconnectingApp{t: t, s: s, events: make(chan appEvent, 1024)}
	a.connect()
	return a
}

// connect logs in again and makes the new connection the one sent on.
func (a *reconnectingApp) connect() {
	a.t.Helper()
	c, err := goxmpp.Options{
		Host: a.s.Info.XMPPAddr, User: a.s.Sender + "@gcm.googleapis.com", Password: a.s.APIKey,
		TLSConfig: a.s.tls.Clone(), Session: true, Mechanism: "PLAIN",
	}.NewClient()
	if err != nil {
		a.t.Fatalf("go-xmpp login: %v", err)
	}
	// No Close at the end: go-xmpp's Close races with a Recv in progress.
	// The reader ends when the server stops, which closes the stream.
	a.conns = append(a.conns, c)
	a.cur = len(a.conns) - 1
	go a.read(a.cur, c)
}

// read feeds every gcm message of connection k to events, then its end.
func (a *reconnectingApp) read(k int, c *goxmpp.Client) {
	for {
		st, err := c.Recv()
		if err != nil {
			a.events <- appEvent{conn: k, err: err}
			return
		}
		chat, ok := st.(goxmpp.Chat)
		if !ok {
			continue
		}
		for _, e := range chat.OtherElem {
			if e.XMLName.Space != "google:mobile:data" || e.XMLName.Local != "gcm" {
				continue
			}
			var text string
			_ = xml.Unmarshal([]byte("<x>"+e.InnerXML+"</x>"), &struct {
				T *string `xml:",chardata"`
			}{&text})
			var v map[string]any
			if err := json.Unmarshal([]byte(text), &v); err != nil {
				a.events <- appEvent{conn: k, err: fmt.Errorf("not JSON: %q", text)}
				return
			}
			a.events <- appEvent{conn: k, m: v}
		}
	}
}

// send writes a downstream message on the current connection and returns
// that connection's index.
func (a *reconnectingApp) send(reg, id string) int {
	a.t.Helper()
	if _, err := a.conns[a.cur].SendOrg(`<message><gcm xmlns="google:mobile:data">{"to":"` + reg + `","message_id":"` + id + `","data":{"n":"` + id + `"}}</gcm></message>`); err != nil {
		a.t.Fatalf("go-xmpp send %s: %v", id, err)
	}
	return a.cur
}

// TestDrainOnDemand: POST /admin/drain while an app server (go-xmpp) has
// messages pending: it gets CONNECTION_DRAINING, reconnects, and resends
// what the old connection nacked CONNECTION_DRAINING on the new one. Every
// message accepted on the old connection is acked on it before it closes,
// none is lost or delivered twice, the new connection is not drained, and
// GET /admin/connections names each session's kind and identity.
func TestDrainOnDemand(t *testing.T) {
	t.Parallel()
	// A slow commit keeps the first burst pending when the drain arrives.
	s := startServer(t, "--commit-delay", "300ms", "--drain-grace", "5s")
	d := s.checkin()
	reg := s.register(d, s.Sender, "com.example")
	dev := s.deviceConn(d)
	a := newReconnectingApp(t, s)

	// The device logged in first: the list is oldest first.
	list := s.waitConns(2)
	if list[0].Kind != "device" || list[0].Identity != d.ID || list[1].Kind != "app" || list[1].Identity != s.Sender ||
		!strings.HasPrefix(list[0].ID, "dev-") || !strings.HasPrefix(list[1].ID, "app-") ||
		list[1].Since.Before(list[0].Since) || list[1].Remote == "" || list[1].Draining {
		t.Fatalf("connections before the drain: %+v", list)
	}
	oldID := list[1].ID

	const n = 60
	sentOn := map[string]int{}
	for i := range n / 2 {
		id := "dr-" + strconv.Itoa(i)
		sentOn[id] = a.send(reg, id)
	}
	// Drain while ccsd holds some unanswered: the list shows them.
	checkFor(t, wait, time.Millisecond, func() error {
		if l := s.conns(); len(l) != 2 || l[1].Pending == 0 {
			return fmt.Errorf("nothing pending: %+v", l)
		}
		return nil
	})
	if got := s.drain("/admin/drain"); got != 1 {
		t.Fatalf("drained %d connections, want 1", got)
	}
	for i := n / 2; i < n; i++ {
		id := "dr-" + strconv.Itoa(i)
		sentOn[id] = a.send(reg, id)
	}

	acked := map[string]int{}
	draining := map[int]bool{}
	closed := map[int]bool{}
	acksAfterDrain, resent := 0, 0
	deadline := time.After(30 * time.Second)
	for len(acked) < n || !closed[0] {
		var ev appEvent
		select {
		case ev = <-a.events:
		case <-deadline:
			t.Fatalf("after 30s: %d acked, old connection closed %v", len(acked), closed[0])
		}
		m, k := ev.m, ev.conn
		id, _ := m["message_id"].(string)
		switch {
		case ev.err != nil:
			if k != 0 {
				t.Fatalf("connection %d ended: %v", k, ev.err)
			}
			for id, on := range sentOn {
				if _, ok := acked[id]; on == 0 && !ok {
					t.Fatalf("old connection closed with %s unanswered", id)
				}
			}
			closed[k] = true
		case m["message_type"] == "control" && m["control_type"] == "CONNECTION_DRAINING":
			if draining[k] || k != 0 {
				t.Fatalf("CONNECTION_DRAINING on connection %d (again: %v)", k, draining[k])
			}
			draining[k] = true
			a.connect()
		case m["message_type"] == "nack" && m["error"] == "CONNECTION_DRAINING":
			if sentOn[id] != k || !draining[k] {
				t.Fatalf("%s nacked draining on connection %d, sent on %d", id, k, sentOn[id])
			}
			sentOn[id] = a.send(reg, id)
			resent++
		case m["message_type"] == "ack":
			if _, dup := acked[id]; dup || sentOn[id] != k || closed[k] {
				t.Fatalf("ack of %s on connection %d: sent on %d, acked before: %v", id, k, sentOn[id], dup)
			}
			acked[id] = k
			if draining[k] {
				acksAfterDrain++
			}
		default:
			t.Fatalf("connection %d got %v", k, m)
		}
	}
	if acksAfterDrain == 0 {
		t.Fatal("no message was pending at the drain: the test proved nothing")
	}
	t.Logf("%d acks on the old connection after CONNECTION_DRAINING, %d resent on the new one", acksAfterDrain, resent)

	got := map[string]bool{}
	for len(got) < n {
		m := dev.expect(wait)
		id := m.str("message_id")
		if got[id] {
			t.Fatalf("device got %s twice", id)
		}
		got[id] = true
		dev.ack(id)
	}
	dev.expectNone(300 * time.Millisecond)

	list = s.waitConns(2)
	if list[0].Kind != "device" || list[1].Kind != "app" || list[1].ID == oldID || list[1].Draining {
		t.Fatalf("connections after the drain: %+v", list)
	}
	// The new connection takes messages as usual.
	k := a.send(reg, "after")
	ev := <-a.events
	if ev.conn != k || ev.m["message_type"] != "ack" || ev.m["message_id"] != "after" {
		t.Fatalf("after the drain: %+v", ev)
	}
}

// TestDrainOneConnection: POST /admin/connections/{id}/drain drains that
// connection only: it gets CONNECTION_DRAINING and is closed; the sender's
// other connection gets nothing and keeps working. A device session cannot
// be drained (409) and an unknown id is 404.
func TestDrainOneConnection(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	d := s.checkin()
	reg := s.register(d, s.Sender, "com.example")
	dev := s.deviceConn(d)
	a, b := s.appServer(), s.appServer()
	ids := map[string]string{} // local address -> connection id
	var devID string
	for _, c := range s.waitConns(3) {
		if c.Kind == "device" {
			devID = c.ID
		}
		ids[c.Remote] = c.ID
	}
	aID := ids[a.conn.LocalAddr().String()]
	if aID == "" || devID == "" || len(ids) != 3 {
		t.Fatalf("connections %v: no entry for the first app server (%s)", ids, a.conn.LocalAddr())
	}
	if got := s.drain("/admin/connections/" + aID + "/drain"); got != 1 {
		t.Fatalf("drained %d", got)
	}
	m := a.expect(wait)
	if m.str("message_type") != "control" || m.str("control_type") != "CONNECTION_DRAINING" {
		t.Fatalf("drained connection got %v", m.json)
	}
	if e := a.closed(wait); e != nil {
		t.Fatalf("drained connection ended with %s, want a plain end of stream", e)
	}
	b.expectNone(200 * time.Millisecond)
	b.send(`{"to":"` + reg + `","message_id":"still-1"}`)
	if m := b.expect(wait); m.str("message_type") != "ack" || m.str("message_id") != "still-1" {
		t.Fatalf("other connection: %v", m.json)
	}
	if m := dev.expect(wait); m.str("message_id") != "still-1" {
		t.Fatalf("device: %v", m.json)
	}
	for _, c := range []struct {
		path string
		want int
	}{{"/admin/connections/" + devID + "/drain", http.StatusConflict}, {"/admin/connections/app-999999/drain", http.StatusNotFound}} {
		if code, body := s.adminDo("POST", c.path, ""); code != c.want {
			t.Errorf("POST %s: %d %s, want %d", c.path, code, body, c.want)
		}
	}
	// Once closed, the drained connection is gone from the list.
	s.waitConns(2)
	if code, body := s.adminDo("POST", "/admin/connections/"+aID+"/drain", ""); code != http.StatusNotFound {
		t.Errorf("drain of the closed connection: %d %s, want 404", code, body)
	}
}

// TestMaxConnectionAge: with --max-connection-age 1s an app-server
// connection is drained after about a second and closed, then a new one is
// accepted (and drained in its turn); the device session is untouched.
func TestMaxConnectionAge(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--max-connection-age", "1s")
	d := s.checkin()
	dev := s.deviceConn(d)
	for range 2 {
		start := time.Now()
		a := s.appServer()
		m := a.expect(5 * time.Second)
		if age := time.Since(start); m.str("control_type") != "CONNECTION_DRAINING" || age < 800*time.Millisecond {
			t.Fatalf("after %v: %v, want CONNECTION_DRAINING after about 1s", age, m.json)
		}
		a.closed(wait)
	}
	checkFor(t, wait, 20*time.Millisecond, func() error {
		if l := s.conns(); len(l) != 1 || l[0].Kind != "device" || l[0].Identity != d.ID {
			return fmt.Errorf("connections %+v, want the device only", l)
		}
		return nil
	})
	dev.expectNone(100 * time.Millisecond)
}
