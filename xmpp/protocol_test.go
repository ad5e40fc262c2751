package xmpp

import (
	"encoding/xml"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
)

// loggedIn starts a server and returns a bound raw client and its Conn.
func loggedIn(t *testing.T, echo bool, mod func(*Config)) (*testEnv, *rawClient, *Conn) {
	t.Helper()
	h := newTestHandler(echo)
	env := startServer(t, h, mod)
	c := env.raw()
	c.login("gcm.googleapis.com", "123@gcm.googleapis.com")
	return env, c, connOf(t, h)
}

// TestWrongPassword: a bad password gets <failure><not-authorized/></failure>,
// the stream is closed, and the Handler never sees the connection.
func TestWrongPassword(t *testing.T) {
	for name, blob := range map[string]string{
		"password":     plainBlob("", "123", "wrong"),
		"unknown user": plainBlob("", "999", testPassword),
		"other domain": plainBlob("", "123@example.com", testPassword),
		"authzid":      plainBlob("456", "123", testPassword),
		"no NULs":      "MTIz",
		"bad base64":   "!!!not-base64!!!",
	} {
		t.Run(name, func(t *testing.T) {
			h := newTestHandler(false)
			env := startServer(t, h, nil)
			c := env.raw()
			c.open("gcm.googleapis.com")
			c.features()
			c.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>` + blob + `</auth>`)
			e := c.next()
			if e.XMLName.Local != "failure" || e.XMLName.Space != nsSASL {
				t.Fatalf("want failure, got %v %s", e.XMLName, e.Inner)
			}
			if _, ok := e.kid(nsSASL, "not-authorized"); !ok {
				t.Fatalf("want not-authorized, got %s", e.Inner)
			}
			c.expectEnd()
			select {
			case <-h.conns:
				t.Fatal("handler opened a failed login")
			default:
			}
		})
	}
}

// TestAuthzid: an authzid naming the same user (with or without domain) is
// accepted.
func TestAuthzid(t *testing.T) {
	for _, z := range []string{"123", "123@gcm.googleapis.com", "123@fcm.googleapis.com"} {
		h := newTestHandler(false)
		env := startServer(t, h, nil)
		c := env.raw()
		c.open("gcm.googleapis.com")
		c.features()
		c.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>` + plainBlob(z, "123@gcm.googleapis.com", testPassword) + `</auth>`)
		if e := c.next(); e.XMLName.Local != "success" {
			t.Fatalf("authzid %q: %v %s", z, e.XMLName, e.Inner)
		}
	}
}

// TestPlainWithoutInitialResponse: <auth/> without data gets an empty
// challenge; the <response/> then authenticates (and a bad one fails with
// <failure/>).
func TestPlainWithoutInitialResponse(t *testing.T) {
	for _, good := range []bool{true, false} {
		h := newTestHandler(false)
		env := startServer(t, h, nil)
		c := env.raw()
		c.open("gcm.googleapis.com")
		c.features()
		c.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'/>`)
		e := c.next()
		if e.XMLName.Local != "challenge" || strings.TrimSpace(e.Text) != "=" {
			t.Fatalf("want empty challenge, got %v %q", e.XMLName, e.Inner)
		}
		pw := testPassword
		if !good {
			pw = "nope"
		}
		c.send(`<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>` + plainBlob("", "123", pw) + `</response>`)
		e = c.next()
		want := "success"
		if !good {
			want = "failure"
		}
		if e.XMLName.Local != want {
			t.Fatalf("want %s, got %v %s", want, e.XMLName, e.Inner)
		}
	}
}

// TestUnknownMechanism: mellium answers invalid-mechanism and we close.
func TestUnknownMechanism(t *testing.T) {
	env := startServer(t, newTestHandler(false), nil)
	c := env.raw()
	c.open("gcm.googleapis.com")
	c.features()
	c.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='X-OAUTH2'>AAAA</auth>`)
	e := c.next()
	if _, ok := e.kid(nsSASL, "invalid-mechanism"); e.XMLName.Local != "failure" || !ok {
		t.Fatalf("got %v %s", e.XMLName, e.Inner)
	}
	c.expectEnd()
}

// TestHostUnknown: a stream to another domain gets host-unknown right after
// the server's header, and no features.
func TestHostUnknown(t *testing.T) {
	env := startServer(t, newTestHandler(false), nil)
	c := env.raw()
	c.open("example.com")
	c.expectStreamError("host-unknown")
	if strings.Contains(c.rec.String(), "features") {
		t.Fatalf("features leaked: %q", c.rec.String())
	}
}

// TestIQs: session and ping IQs get an empty result with the same id; other
// get/set IQs get service-unavailable; IQ results and presence are ignored.
func TestIQs(t *testing.T) {
	_, c, _ := loggedIn(t, true, nil)
	c.send(`<presence/><presence xml:lang='en'><show>chat</show></presence>`)
	c.send(`<iq type='result' id='r0'/>`)
	c.send(`<iq to='gcm.googleapis.com' type='set' id='s1'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>`)
	e := c.next()
	if typ, _ := e.attr("type"); e.XMLName.Local != "iq" || typ != "result" || attr(e, "id") != "s1" || len(e.Kids) != 0 {
		t.Fatalf("session: %v %v %s", e.XMLName, e.Attrs, e.Inner)
	}
	c.send(`<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>`)
	e = c.next()
	if attr(e, "type") != "result" || attr(e, "id") != "p1" || len(e.Kids) != 0 {
		t.Fatalf("ping: %v %s", e.Attrs, e.Inner)
	}
	c.send(`<iq type='get' id='q1'><query xmlns='jabber:iq:roster'/></iq>`)
	e = c.next()
	errEl, _ := e.kid(nsClient, "error")
	if attr(e, "type") != "error" || attr(e, "id") != "q1" {
		t.Fatalf("roster: %v %s", e.Attrs, e.Inner)
	}
	if _, ok := errEl.kid(nsStanzas, "service-unavailable"); !ok || attr(errEl, "type") != "cancel" {
		t.Fatalf("roster error: %s", e.Inner)
	}
	c.send(`<iq type='bogus' id='x1'/>`)
	e = c.next()
	errEl, _ = e.kid(nsClient, "error")
	if _, ok := errEl.kid(nsStanzas, "bad-request"); !ok || attr(e, "id") != "x1" {
		t.Fatalf("bad type: %s", e.Inner)
	}
	// Still alive after all of that: an echo goes through.
	c.send(gcmMessage("e1", "alive"))
	e = c.next()
	if g, _ := e.kid(nsGCM, "gcm"); g.Text != "alive" {
		t.Fatalf("echo: %s", e.Inner)
	}
}

func attr(e elem, name string) string {
	v, _ := e.attr(name)
	return v
}

// TestPayloadRoundTrip: & < > " ' entities, numeric references, CDATA, a
// prefixed gcm element, newlines and non-ASCII text reach the Stream exactly,
// and Send writes them back escaping only & < >.
func TestPayloadRoundTrip(t *testing.T) {
	env, c, conn := loggedIn(t, false, nil)
	h := env.h
	cases := []struct{ wire, want string }{
		{`{"a":"x &amp; y &lt; z &gt; w"}`, `{"a":"x & y < z > w"}`},
		{`<![CDATA[{"a":"<b>&amp;</b>"}]]>`, `{"a":"<b>&amp;</b>"}`},
		{`{"q":"&quot;&apos;&#65;&#x42;"}`, `{"q":""'AB"}`},
		{"  {\"nl\":\"a\nb\"}\n", "  {\"nl\":\"a\nb\"}\n"},
		{`{"u":"héllo ☃ 🎉"}`, `{"u":"héllo ☃ 🎉"}`},
		{`part1<![CDATA[<x>]]>part3`, `part1<x>part3`},
		{``, ``},
	}
	for i, tc := range cases {
		id := fmt.Sprintf("p%d", i)
		c.send(gcmMessage(id, tc.wire))
		m := recv(t, h)
		if m.id != id || string(m.payload) != tc.want {
			t.Fatalf("case %d: got %q %q want %q", i, m.id, m.payload, tc.want)
		}
	}
	c.send(`<message id="pre"><data:gcm xmlns:data="google:mobile:data">{"k":"&lt;v&gt;"}</data:gcm></message>`)
	if m := recv(t, h); m.id != "pre" || string(m.payload) != `{"k":"<v>"}` {
		t.Fatalf("prefixed: %q %q", m.id, m.payload)
	}
	// Extra children and a body do not confuse extraction; only the first gcm counts.
	c.send(`<message id="mix" to="gcm.googleapis.com"><body>ignored</body><gcm xmlns="google:mobile:data">one</gcm><gcm xmlns="google:mobile:data">two</gcm></message>`)
	if m := recv(t, h); m.id != "mix" || string(m.payload) != "one" {
		t.Fatalf("mixed: %q %q", m.id, m.payload)
	}
	// Ignored: no gcm child, gcm in another namespace, error messages.
	c.send(`<message id="n1"><body>hi</body></message><message id="n2"><gcm xmlns="other">x</gcm></message>` +
		`<message id="n3" type="error"><gcm xmlns="google:mobile:data">x</gcm></message>` + gcmMessage("after", "ok"))
	if m := recv(t, h); m.id != "after" {
		t.Fatalf("ignored messages were delivered: %q", m.id)
	}

	// Output: raw bytes escape & < > only; quotes stay as they are.
	payload := `{"a":"x & y < z > w","q":"\"'"}`
	if err := conn.Send([]byte(payload), ""); err != nil {
		t.Fatal(err)
	}
	e := c.next()
	g, _ := e.kid(nsGCM, "gcm")
	if g.Text != payload {
		t.Fatalf("decoded %q", g.Text)
	}
	raw := c.rec.String()
	want := `<gcm xmlns="google:mobile:data">{"a":"x &amp; y &lt; z &gt; w","q":"\"'"}</gcm></message>`
	if !strings.Contains(raw, want) {
		t.Fatalf("raw output %q lacks %q", raw, want)
	}
}

// TestSendType: typ "" writes no type attribute at all; "normal" writes
// type="normal" (raw bytes checked).
func TestSendType(t *testing.T) {
	_, c, conn := loggedIn(t, false, nil)
	if err := conn.Send([]byte("ack"), ""); err != nil {
		t.Fatal(err)
	}
	if err := conn.Send([]byte("up"), "normal"); err != nil {
		t.Fatal(err)
	}
	c.next()
	c.next()
	raw := c.rec.String()
	re := regexp.MustCompile(`<message id="[^"]+"><gcm xmlns="google:mobile:data">ack</gcm></message>`)
	if !re.MatchString(raw) {
		t.Fatalf("no bare message in %q", raw)
	}
	re = regexp.MustCompile(`<message id="[^"]+" type="normal"><gcm xmlns="google:mobile:data">up</gcm></message>`)
	if !re.MatchString(raw) {
		t.Fatalf("no type=normal message in %q", raw)
	}
	ids := regexp.MustCompile(`<message id="([^"]+)"`).FindAllStringSubmatch(raw, -1)
	if len(ids) != 2 || ids[0][1] == ids[1][1] {
		t.Fatalf("ids %v", ids)
	}
}

// TestBounce: the stanza error has the shape of spec §4.4, byte for byte.
func TestBounce(t *testing.T) {
	_, c, conn := loggedIn(t, false, nil)
	if err := conn.Bounce("42", []byte(`{"to":"REG","data":{"x":"<y>"}}`), "InvalidJson: JSON_PARSING_ERROR : Missing Required Field: message_id\n"); err != nil {
		t.Fatal(err)
	}
	e := c.next()
	want := `<message id="42" type="error" to="` + c.jid + `"><gcm xmlns="google:mobile:data">{"to":"REG","data":{"x":"&lt;y&gt;"}}</gcm>` +
		`<error code="400" type="modify"><bad-request xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/>` +
		`<text xmlns="urn:ietf:params:xml:ns:xmpp-stanzas">InvalidJson: JSON_PARSING_ERROR : Missing Required Field: message_id` + "\n" + `</text></error></message>`
	if !strings.Contains(c.rec.String(), want) {
		t.Fatalf("raw %q lacks %q", c.rec.String(), want)
	}
	errEl, _ := e.kid(nsClient, "error")
	if attr(e, "type") != "error" || attr(errEl, "code") != "400" {
		t.Fatalf("decoded %v %s", e.Attrs, e.Inner)
	}
}

// TestCloseConflict: Close("conflict") flushes queued stanzas, then the peer
// gets the conflict stream error and the end of the stream; Closed is called
// and Send fails with ErrClosed.
func TestCloseConflict(t *testing.T) {
	env, c, conn := loggedIn(t, false, nil)
	if err := conn.Send([]byte("last"), ""); err != nil {
		t.Fatal(err)
	}
	conn.Close("conflict")
	if err := conn.Send([]byte("late"), ""); !errors.Is(err, ErrClosed) {
		t.Fatalf("Send after Close: %v", err)
	}
	if err := conn.Bounce("1", nil, "x"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Bounce after Close: %v", err)
	}
	e := c.next()
	if g, _ := e.kid(nsGCM, "gcm"); g.Text != "last" {
		t.Fatalf("queued stanza lost: %s", e.Inner)
	}
	c.expectStreamError("conflict")
	<-env.h.closed
	<-conn.Done()
}

// TestCloseGraceful: Close("") ends the stream without an error; the server
// waits for the peer's </stream:stream>.
func TestCloseGraceful(t *testing.T) {
	_, c, conn := loggedIn(t, false, nil)
	conn.Close("")
	c.expectEnd()
	select {
	case <-conn.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("not done")
	}
}

// TestMaxConnsPerIdentity: the connection past the limit gets
// policy-violation; other identities and later connections are fine.
func TestMaxConnsPerIdentity(t *testing.T) {
	h := newTestHandler(false)
	env := startServer(t, h, func(c *Config) { c.MaxConnsPerIdentity = 2 })
	a, b := env.raw(), env.raw()
	a.login("gcm.googleapis.com", "123")
	b.login("gcm.googleapis.com", "123")
	connOf(t, h)
	connOf(t, h)
	third := env.raw()
	third.login("gcm.googleapis.com", "123")
	third.expectStreamError("policy-violation")
	other := env.raw()
	other.login("gcm.googleapis.com", "456")
	connOf(t, h)
	if n := env.srv.ConnCount(); n != 3 {
		t.Fatalf("ConnCount %d", n)
	}
	a.send(`</stream:stream>`)
	a.expectEnd()
	<-h.closed
	again := env.raw()
	again.login("gcm.googleapis.com", "123")
	connOf(t, h)
}

// TestWhitespace: newlines during negotiation (as go-xmpp writes them) and
// whitespace keepalives between stanzas are accepted; whitespace inside a
// payload is kept.
func TestWhitespace(t *testing.T) {
	h := newTestHandler(false)
	env := startServer(t, h, nil)
	c := env.raw()
	c.send("<?xml version='1.0'?>\n<stream:stream to='gcm.googleapis.com' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>\n")
	c.nextStart()
	c.features()
	c.send("\n<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" + plainBlob("", "123", testPassword) + "</auth>\n  \n")
	if e := c.next(); e.XMLName.Local != "success" {
		t.Fatalf("auth: %v", e.XMLName)
	}
	c.d = xml.NewDecoder(c.rec)
	c.send("<stream:stream to='gcm.googleapis.com' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>\n\t")
	c.nextStart()
	c.features()
	c.send("\n<iq type='set' id='b1'>\n  <bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>\n</iq>\n")
	if e := c.next(); attr(e, "type") != "result" {
		t.Fatalf("bind: %s", e.Inner)
	}
	for i := 0; i < 5; i++ {
		c.send(" ")
	}
	c.send("\n \r\n\t" + gcmMessage("w", "  a \n b  ") + " \n")
	if m := recv(t, h); string(m.payload) != "  a \n b  " {
		t.Fatalf("payload %q", m.payload)
	}
}

// TestPingUnderLoad: a ping is answered ahead of messages still queued for a
// peer that has not been reading.
func TestPingUnderLoad(t *testing.T) {
	_, c, conn := loggedIn(t, false, func(c *Config) { c.SendQueue = 2048; c.SendQueueBytes = 64 << 20 })
	big := []byte(strings.Repeat("q", 16<<10))
	const n = 1500 // ~24 MiB: far more than the socket buffers hold
	for i := 0; i < n; i++ {
		if err := conn.Send(big, ""); err != nil {
			t.Fatalf("Send %d: %v", i, err)
		}
	}
	c.send(`<iq type='get' id='ping-1'><ping xmlns='urn:xmpp:ping'/></iq>`)
	time.Sleep(100 * time.Millisecond) // let the server read it while its writer is blocked
	before := 0
	for {
		e := c.next()
		if e.XMLName.Local == "iq" {
			if attr(e, "id") != "ping-1" || attr(e, "type") != "result" {
				t.Fatalf("iq %v", e.Attrs)
			}
			break
		}
		before++
	}
	if before >= n-100 {
		t.Fatalf("ping answered after %d of %d queued messages", before, n)
	}
	t.Logf("ping answered after %d of %d queued messages", before, n)
}
