package xmpp

import (
	"errors"
	"io"
	"net"
	"time"
)

// errPlaintext ends a connection whose first byte is '<': a client that
// expected STARTTLS (or no TLS at all) on a direct-TLS port.
var errPlaintext = errors.New("xmpp: plain-text XMPP on a direct-TLS port")

// plaintextRefusal is what such a client reads: a stream of its own
// language that says what to do, instead of a TLS alert it cannot parse or
// silence until it times out.
const plaintextRefusal = `<?xml version='1.0'?><stream:stream xmlns="jabber:client" xmlns:stream="http://etherx.jabber.org/streams" version="1.0">` +
	`<stream:error><policy-violation xmlns="urn:ietf:params:xml:ns:xmpp-streams"/>` +
	`<text xmlns="urn:ietf:params:xml:ns:xmpp-streams">this port speaks direct TLS (XEP-0368), not STARTTLS: start TLS before the stream header</text>` +
	`</stream:error></stream:stream>`

// peekedConn is a connection whose first byte was read to tell TLS from
// plain XMPP; Read hands it back first.
type peekedConn struct {
	net.Conn
	first []byte
}

func (c *peekedConn) Read(p []byte) (int, error) {
	if len(c.first) > 0 && len(p) > 0 {
		n := copy(p, c.first)
		c.first = c.first[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// CloseWrite half-closes the TCP connection underneath, for lingerClose.
func (c *peekedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// sniffTLS reads the first byte of raw (the caller set its deadline). A TLS
// ClientHello starts with 0x16; a '<' is XMPP in the clear, which is
// answered with plaintextRefusal and errPlaintext.
func sniffTLS(raw net.Conn) (net.Conn, error) {
	b := make([]byte, 1)
	if _, err := raw.Read(b); err != nil {
		return nil, err
	}
	if b[0] == '<' {
		_ = raw.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = raw.Write([]byte(plaintextRefusal))
		// Half-close and drain what the client already sent: closing with
		// unread bytes would reset the connection and could destroy the
		// answer in flight.
		if cw, ok := raw.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
			_ = raw.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			_, _ = io.CopyN(io.Discard, raw, 64<<10)
		}
		return nil, errPlaintext
	}
	return &peekedConn{Conn: raw, first: b}, nil
}
