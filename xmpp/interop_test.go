package xmpp

import (
	"encoding/xml"
	"strings"
	"testing"
	"time"

	goxmpp "github.com/xmppo/go-xmpp"
)

// TestGoXMPPInterop: github.com/xmppo/go-xmpp v0.4.1, a client written
// against ordinary XMPP servers, connects with direct TLS (no STARTTLS),
// writes newlines between its negotiation elements, authenticates with PLAIN,
// binds, sends the session IQ and initial presence, sends whitespace
// keepalives and a raw gcm message, and reads the echo, for both domains.
func TestGoXMPPInterop(t *testing.T) {
	for _, user := range []string{"123@gcm.googleapis.com", "123@fcm.googleapis.com"} {
		t.Run(user, func(t *testing.T) {
			h := newTestHandler(true)
			h.echoType = "normal"
			env := startServer(t, h, nil)
			tlsCfg := env.clientTLS()
			tlsCfg.ServerName = strings.SplitN(user, "@", 2)[1]
			opts := goxmpp.Options{
				Host:        env.addr,
				User:        user,
				Password:    testPassword,
				NoTLS:       false,
				StartTLS:    false,
				TLSConfig:   tlsCfg,
				Session:     true,
				DialTimeout: 5 * time.Second,
			}
			cl, err := opts.NewClient()
			if err != nil {
				t.Fatalf("go-xmpp connect: %v\nlogs: %s", err, env.logs.String())
			}
			closed := false
			defer func() {
				if !closed { // go-xmpp's Close deadlocks when called twice
					cl.Close()
				}
			}()
			if !strings.HasPrefix(cl.JID(), "123@gcm.googleapis.com/") {
				t.Fatalf("bound %q", cl.JID())
			}
			conn := connOf(t, h)
			if conn.Identity() != "123" {
				t.Fatalf("identity %q", conn.Identity())
			}
			if _, err := cl.SendKeepAlive(); err != nil {
				t.Fatal(err)
			}
			const payload = `{"message_id":"m1","data":{"k":"a&b<c>"}}`
			if _, err := cl.SendOrg(`<message id="s1"><gcm xmlns="google:mobile:data">{"message_id":"m1","data":{"k":"a&amp;b&lt;c&gt;"}}</gcm></message>`); err != nil {
				t.Fatal(err)
			}
			if _, err := cl.SendKeepAlive(); err != nil {
				t.Fatal(err)
			}
			got := make(chan goxmpp.Chat, 1)
			errc := make(chan error, 1)
			go func() {
				for {
					st, err := cl.Recv()
					if err != nil {
						errc <- err
						return
					}
					if chat, ok := st.(goxmpp.Chat); ok && len(chat.OtherElem) > 0 {
						got <- chat
						return
					}
				}
			}()
			select {
			case chat := <-got:
				if chat.Type != "normal" {
					t.Fatalf("type %q", chat.Type)
				}
				el := chat.OtherElem[0]
				if el.XMLName.Space != nsGCM || el.XMLName.Local != "gcm" {
					t.Fatalf("element %v", el.XMLName)
				}
				var text struct {
					V string `xml:",chardata"`
				}
				if err := xml.Unmarshal([]byte("<x>"+el.InnerXML+"</x>"), &text); err != nil {
					t.Fatal(err)
				}
				if text.V != payload {
					t.Fatalf("echo %q (raw %q)", text.V, el.InnerXML)
				}
			case err := <-errc:
				t.Fatalf("recv: %v", err)
			case <-time.After(5 * time.Second):
				t.Fatal("no echo")
			}
			closed = true
			if err := cl.Close(); err != nil {
				t.Fatalf("close: %v", err)
			}
			select {
			case <-conn.Done():
			case <-time.After(5 * time.Second):
				t.Fatal("server did not close")
			}
		})
	}
}

// TestGoXMPPWrongPassword: go-xmpp reports the SASL failure.
func TestGoXMPPWrongPassword(t *testing.T) {
	env := startServer(t, newTestHandler(false), nil)
	opts := goxmpp.Options{Host: env.addr, User: "123@gcm.googleapis.com", Password: "bad", TLSConfig: env.clientTLS(), DialTimeout: 5 * time.Second}
	cl, err := opts.NewClient()
	if err == nil {
		cl.Close()
		t.Fatal("login with a bad password succeeded")
	}
	if !strings.Contains(err.Error(), "not-authorized") {
		t.Fatalf("error %v", err)
	}
}
