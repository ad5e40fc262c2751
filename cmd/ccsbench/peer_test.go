package main

import (
	"bytes"
	"encoding/xml"
	"io"
	"strings"
	"testing"
)

// TestPeerFlags: the peer subcommand needs a CA and a password, and, like
// every ccsbench run, refuses an address that is not loopback.
func TestPeerFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // in stderr
	}{
		{[]string{"peer", "--password", "x"}, "--ca and --password"},
		{[]string{"peer", "--ca", "c.pem"}, "--ca and --password"},
		{[]string{"peer", "--ca", "c.pem", "--password", "x", "--addr", "192.0.2.1:5223"}, "not a loopback address"},
		{[]string{"peer", "--ca", "c.pem", "--password", "x", "--window", "0"}, "must be positive"},
	} {
		var out, errb bytes.Buffer
		if code := run(t.Context(), tc.args, &out, &errb); code != exitUsage || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d and %q", tc.args, code, errb.String(), exitUsage, tc.want)
		}
	}
}

// TestAppendChat: the message is one well-formed RFC 6121 chat stanza
// with the id and body given, escaped.
func TestAppendChat(t *testing.T) {
	b := appendChat(nil, `b1@localhost/r"x`, "42", []byte("a<b&c"))
	var m struct {
		XMLName xml.Name `xml:"message"`
		Type    string   `xml:"type,attr"`
		To      string   `xml:"to,attr"`
		ID      string   `xml:"id,attr"`
		Body    string   `xml:"body"`
	}
	d := xml.NewDecoder(bytes.NewReader(b))
	if err := d.Decode(&m); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	if m.Type != "chat" || m.To != `b1@localhost/r"x` || m.ID != "42" || m.Body != "a<b&c" {
		t.Errorf("%s decoded as %+v", b, m)
	}
	if _, err := d.Token(); err != io.EOF {
		t.Errorf("%s: more than one element (%v)", b, err)
	}
}
