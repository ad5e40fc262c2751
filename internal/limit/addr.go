package limit

import (
	"net"
	"net/netip"
)

// AddrKey returns the key that per-address limits count a peer under: the
// IPv4 address, or the /64 prefix of an IPv6 address (one subscriber line
// usually gets a whole /64, so counting single IPv6 addresses would let one
// client take 2^64 keys). addr is "host:port", a bare IP, or anything else,
// which is returned unchanged.
func AddrKey(addr string) string {
	host := addr
	if h, _, err := net.SplitHostPort(addr); err == nil {
		host = h
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	ip = ip.Unmap()
	if ip.Is4() {
		return ip.String()
	}
	p, err := ip.WithZone("").Prefix(64)
	if err != nil {
		return host
	}
	return p.String()
}

// NetAddrKey is AddrKey for a net.Addr (nil gives "").
func NetAddrKey(a net.Addr) string {
	if a == nil {
		return ""
	}
	return AddrKey(a.String())
}
