package limit

import (
	"net"
	"sync"
	"sync/atomic"
)

// GlobalKey is the key under which a Count used as a process-wide limit (of
// open connections, see Listener) counts everything.
const GlobalKey = ""

// Listener wraps a net.Listener so that it hands out only connections within
// two Counts: Global (key GlobalKey; shared by every listener of the
// process, to stay below the file-descriptor limit) and PerAddr (key
// AddrKey of the peer). A slot is held while the connection is open.
//
// A connection past either limit is accepted and closed at once rather than
// left in the kernel's backlog: the client sees its connection closed
// immediately instead of hanging, and the backlog keeps draining so that
// clients within the limits still get in. Accept errors (e.g. EMFILE) are
// returned unchanged, so the server's own accept backoff applies.
type Listener struct {
	net.Listener
	Global  *Count
	PerAddr *Count
	// Refused counts connections closed at once for a limit.
	Refused atomic.Uint64
	// OnRefuse, if set, is called (on the accepting goroutine) for each
	// refused connection, with reason "global" or "per-address".
	OnRefuse func(remote net.Addr, reason string)
}

// NewListener wraps l; nil Counts do not limit.
func NewListener(l net.Listener, global, perAddr *Count) *Listener {
	return &Listener{Listener: l, Global: global, PerAddr: perAddr}
}

// Accept returns the next connection within the limits.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if !l.Global.Acquire(GlobalKey) {
			l.refuse(c, "global")
			continue
		}
		key := NetAddrKey(c.RemoteAddr())
		if !l.PerAddr.Acquire(key) {
			l.Global.Release(GlobalKey)
			l.refuse(c, "per-address")
			continue
		}
		return &countedConn{Conn: c, release: func() {
			l.PerAddr.Release(key)
			l.Global.Release(GlobalKey)
		}}, nil
	}
}

func (l *Listener) refuse(c net.Conn, reason string) {
	l.Refused.Add(1)
	_ = c.Close()
	if l.OnRefuse != nil {
		l.OnRefuse(c.RemoteAddr(), reason)
	}
}

// countedConn gives its slots back on its first Close.
type countedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

// Close closes the connection and releases its slots once.
func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// CloseWrite half-closes a TCP connection (net/http and TLS use it when the
// wrapped connection has it).
func (c *countedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
