package xmpp

import (
	"context"
	"crypto/tls"
	"encoding/xml"
	"errors"
	"strings"
	"testing"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/ping"
	"mellium.im/xmpp/stanza"
)

func gcmMessage(id, payload string) string {
	return `<message id="` + id + `"><gcm xmlns="google:mobile:data">` + payload + `</gcm></message>`
}

func recv(t *testing.T, h *testHandler) received {
	t.Helper()
	select {
	case m := <-h.msgs:
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("no message received")
		return received{}
	}
}

func connOf(t *testing.T, h *testHandler) *Conn {
	t.Helper()
	select {
	case c := <-h.conns:
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("no connection opened")
		return nil
	}
}

// TestRawLoginAndEcho: both login forms and both domains negotiate, the JID is
// identity@Domain/resource, a message is delivered to the Stream with its
// stanza id and payload, and Send reaches the peer.
func TestRawLoginAndEcho(t *testing.T) {
	for _, tc := range []struct{ to, user string }{
		{"gcm.googleapis.com", "123"},
		{"gcm.googleapis.com", "123@gcm.googleapis.com"},
		{"fcm.googleapis.com", "123@fcm.googleapis.com"},
		{"fcm.googleapis.com", "123"},
	} {
		t.Run(tc.to+"/"+tc.user, func(t *testing.T) {
			h := newTestHandler(false)
			env := startServer(t, h, nil)
			c := env.raw()
			c.login(tc.to, tc.user)
			if !strings.HasPrefix(c.jid, "123@gcm.googleapis.com/") || len(c.jid) <= len("123@gcm.googleapis.com/") {
				t.Fatalf("jid %q", c.jid)
			}
			conn := connOf(t, h)
			if conn.Identity() != "123" || conn.JID() != c.jid {
				t.Fatalf("identity %q jid %q, client saw %q", conn.Identity(), conn.JID(), c.jid)
			}
			if conn.RemoteAddr() == nil {
				t.Fatal("no remote addr")
			}
			c.send(gcmMessage("s1", `{"message_id":"m1"}`))
			m := recv(t, h)
			if m.id != "s1" || string(m.payload) != `{"message_id":"m1"}` {
				t.Fatalf("got %q %q", m.id, m.payload)
			}
			if err := conn.Send([]byte(`{"message_type":"ack","message_id":"m1"}`), ""); err != nil {
				t.Fatal(err)
			}
			e := c.next()
			g, ok := e.kid(nsGCM, "gcm")
			if e.XMLName.Local != "message" || !ok || g.Text != `{"message_type":"ack","message_id":"m1"}` {
				t.Fatalf("got %v %s", e.XMLName, e.Inner)
			}
			if env.srv.ConnCount() != 1 {
				t.Fatalf("ConnCount %d", env.srv.ConnCount())
			}
			c.send(`</stream:stream>`)
			c.expectEnd()
			select {
			case <-conn.Done():
			case <-time.After(5 * time.Second):
				t.Fatal("Done not closed")
			}
			if got := <-h.closed; got != conn {
				t.Fatal("Closed for another conn")
			}
			if err := conn.Send([]byte("x"), ""); !errors.Is(err, ErrClosed) {
				t.Fatalf("Send after close: %v", err)
			}
			if n := env.srv.ConnCount(); n != 0 {
				t.Fatalf("ConnCount after close %d", n)
			}
		})
	}
}

// TestMelliumClient: mellium's own client negotiates (SASL PLAIN over direct
// TLS, bind), its messages reach the Stream, echoes come back, and its XEP-0199
// ping gets a result.
func TestMelliumClient(t *testing.T) {
	h := newTestHandler(true)
	env := startServer(t, h, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tc, err := tls.Dial("tcp", env.addr, env.clientTLS())
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	sess, err := xmpp.NewClientSession(ctx, jid.MustParse("123@gcm.googleapis.com"), tc,
		xmpp.SASL("", testPassword, sasl.Plain), xmpp.BindResource())
	if err != nil {
		t.Fatalf("negotiate: %v", err)
	}
	if !strings.HasPrefix(sess.LocalAddr().String(), "123@gcm.googleapis.com/") {
		t.Fatalf("bound %s", sess.LocalAddr())
	}
	got := make(chan string, 16)
	go func() {
		_ = sess.Serve(xmpp.HandlerFunc(func(r xmlstream.TokenReadEncoder, start *xml.StartElement) error {
			if start.Name.Local != "message" {
				return nil
			}
			d := xml.NewTokenDecoder(xmlstream.MultiReader(xmlstream.Token(*start), r))
			if _, err := d.Token(); err != nil {
				return err
			}
			var m struct {
				GCM string `xml:"google:mobile:data gcm"`
			}
			if err := d.DecodeElement(&m, start); err != nil {
				return err
			}
			got <- m.GCM
			return nil
		}))
	}()
	const payload = `{"a":"<&>\"x\""}`
	err = sess.Send(ctx, stanza.Message{ID: "m1"}.Wrap(xmlstream.Wrap(
		xmlstream.Token(xml.CharData(payload)),
		xml.StartElement{Name: xml.Name{Space: nsGCM, Local: "gcm"}},
	)))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-got:
		if p != payload {
			t.Fatalf("echo %q", p)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no echo")
	}
	if err := ping.Send(ctx, sess, jid.MustParse("gcm.googleapis.com")); err != nil {
		t.Fatalf("ping: %v", err)
	}
	if err := sess.Close(); err != nil {
		t.Fatal(err)
	}
}
