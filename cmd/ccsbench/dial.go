package main

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
)

// maxSourceAddrs bounds --source-addrs: 127.0.0.1 to 127.0.255.255.
const maxSourceAddrs = 65535

// dialPool spreads the client's connections over the source addresses
// 127.0.0.1..127.0.0.N (on Linux every address of 127/8 is local without
// configuration), round-robin, so that ccsd's per-address limits and one
// address's ephemeral ports are not what a large run measures. With N = 1
// it lets the kernel choose, as a plain dialer does.
type dialPool struct {
	dialers []*net.Dialer
	next    atomic.Uint64
}

// newDialPool returns a pool of n loopback-only dialers.
func newDialPool(n int) *dialPool {
	p := &dialPool{dialers: make([]*net.Dialer, n)}
	for i := range n {
		d := loopbackDialer()
		if n > 1 {
			d.LocalAddr = &net.TCPAddr{IP: sourceAddr(i)}
		}
		p.dialers[i] = d
	}
	return p
}

// sourceAddr returns the i-th (from 0) source address: 127.0.0.1 + i.
func sourceAddr(i int) net.IP {
	v := i + 1
	return net.IPv4(127, byte(v>>16), byte(v>>8), byte(v))
}

// pick returns the next dialer.
func (p *dialPool) pick() *net.Dialer {
	if len(p.dialers) == 1 {
		return p.dialers[0]
	}
	return p.dialers[(p.next.Add(1)-1)%uint64(len(p.dialers))]
}

// DialContext dials with the next dialer.
func (p *dialPool) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return p.pick().DialContext(ctx, network, addr)
}

// checkIPv4Loopback reports an error unless addr's host is "localhost" or
// an IPv4 loopback literal: a 127.0.0.x source cannot reach ::1.
func checkIPv4Loopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if strings.EqualFold(host, "localhost") {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.To4() != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("%s is not an IPv4 loopback address, which 127.0.0.x sources need", addr)
}

// setupError wraps a setup failure, with a hint when ccsd's per-address
// limits refused it (HTTP 429 from /checkin or /c2dm/register3).
func setupError(err error) error {
	if strings.Contains(err.Error(), ": 429 ") {
		return fmt.Errorf("setup: %w (ccsd's per-address limits: start it with --checkin-burst 0 --register-burst 0, or spread the run with --source-addrs N)", err)
	}
	return fmt.Errorf("setup: %w", err)
}
