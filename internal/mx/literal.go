package mx

import (
	"net/netip"
	"strings"
)

// literal resolves an address literal such as "[192.0.2.1]" or
// "[IPv6:2001:db8::1]" (RFC 5321 4.1.3) to that address, without DNS.
func literal(domain string) ([]Host, error) {
	inner, ok := strings.CutSuffix(strings.TrimPrefix(domain, "["), "]")
	if !ok {
		return nil, permanent(domain, "5.1.2", "malformed address literal")
	}
	v6 := len(inner) > 5 && strings.EqualFold(inner[:5], "IPv6:")
	if v6 {
		inner = inner[5:]
	}
	addr, err := netip.ParseAddr(inner)
	if err != nil || addr.Zone() != "" || addr.Is6() != v6 {
		return nil, permanent(domain, "5.1.2", "malformed address literal")
	}
	return []Host{{Name: domain, Addrs: []netip.Addr{addr}}}, nil
}
