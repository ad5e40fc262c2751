package e2e

import (
	"encoding/json"
	"encoding/xml"
	"strings"
	"testing"
	"time"

	goxmpp "github.com/xmppo/go-xmpp"
)

// TestInteropGoXMPP drives ccsd with github.com/xmppo/go-xmpp, an XMPP
// client library this project did not write: it logs in as an app server
// (direct TLS, SASL PLAIN, bind, session IQ, initial presence), sends a
// downstream message, gets the ack, and receives a device's upstream
// message. A device logs in with it as well.
func TestInteropGoXMPP(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	d := s.checkin()
	reg := s.register(d, s.Sender, "com.example")

	login := func(addr, user, pass string) *goxmpp.Client {
		t.Helper()
		cfg := s.tls.Clone()
		c, err := goxmpp.Options{
			Host:      addr,
			User:      user,
			Password:  pass,
			TLSConfig: cfg,
			Session:   true,
			Mechanism: "PLAIN",
		}.NewClient()
		if err != nil {
			t.Fatalf("go-xmpp login as %s: %v", user, err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	app := login(s.Info.XMPPAddr, s.Sender+"@gcm.googleapis.com", s.APIKey)
	dev := login(s.Info.DeviceAddr, d.ID+"@gcm.googleapis.com", d.Token)

	if _, err := app.SendOrg(`<message id="i1"><gcm xmlns="google:mobile:data">{"to":"` + reg + `","message_id":"interop-1","data":{"x":"1 &amp; 2"}}</gcm></message>`); err != nil {
		t.Fatal(err)
	}
	if _, _, ack := recvGCM(t, app); ack["message_type"] != "ack" || ack["message_id"] != "interop-1" {
		t.Fatalf("ack: %v", ack)
	}
	_, _, m := recvGCM(t, dev)
	if data, _ := m["data"].(map[string]any); m["message_id"] != "interop-1" || data["x"] != "1 & 2" {
		t.Fatalf("device got %v", m)
	}
	if _, err := dev.SendOrg(`<message><gcm xmlns="google:mobile:data">{"message_type":"ack","message_id":"interop-1"}</gcm></message>`); err != nil {
		t.Fatal(err)
	}
	if _, err := dev.SendOrg(`<message><gcm xmlns="google:mobile:data">{"to":"` + s.Sender + `@gcm.googleapis.com","category":"com.example","message_id":"up-1","data":{"y":"z"}}</gcm></message>`); err != nil {
		t.Fatal(err)
	}
	if _, _, a := recvGCM(t, dev); a["message_type"] != "ack" || a["message_id"] != "up-1" {
		t.Fatalf("device ack: %v", a)
	}
	from, typ, up := recvGCM(t, app)
	if from != "devices@gcm.googleapis.com" {
		t.Errorf("upstream from=%q, want devices@gcm.googleapis.com (spec §5.1)", from)
	}
	if typ != "normal" || up["from"] != reg || up["message_id"] != "up-1" || !strings.HasPrefix(up["category"].(string), "com.example") {
		t.Fatalf("upstream at go-xmpp app server: type=%q %v", typ, up)
	}
}

// recvGCM returns the next gcm message go-xmpp receives: its from, its type
// attribute and its JSON.
func recvGCM(t *testing.T, c *goxmpp.Client) (from, typ string, v map[string]any) {
	t.Helper()
	type result struct {
		from string
		typ  string
		v    map[string]any
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		for {
			st, err := c.Recv()
			if err != nil {
				ch <- result{err: err}
				return
			}
			chat, ok := st.(goxmpp.Chat)
			if !ok {
				continue
			}
			for _, e := range chat.OtherElem {
				if e.XMLName.Space == "google:mobile:data" && e.XMLName.Local == "gcm" {
					var text string
					if err := xml.Unmarshal([]byte("<x>"+e.InnerXML+"</x>"), &struct {
						T *string `xml:",chardata"`
					}{&text}); err != nil {
						ch <- result{err: err}
						return
					}
					var v map[string]any
					err := json.Unmarshal([]byte(text), &v)
					ch <- result{from: chat.Remote, typ: chat.Type, v: v, err: err}
					return
				}
			}
		}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("go-xmpp recv: %v", r.err)
		}
		return r.from, r.typ, r.v
	case <-time.After(wait):
		t.Fatal("go-xmpp: nothing received")
		return "", "", nil
	}
}
