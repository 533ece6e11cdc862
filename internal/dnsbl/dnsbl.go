// Package dnsbl looks a client's address up in DNS blocklists (RFC 5782):
// the address, reversed, is a name under each list's zone, and an A record
// there means the list names it.
package dnsbl

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"

	"github.com/miekg/dns"

	"facteur/internal/resolver"
)

// Querier asks the DNS; *resolver.Resolver is one.
type Querier interface {
	Query(ctx context.Context, name string, qtype uint16) ([]dns.RR, uint32, error)
}

// Lists are the blocklist zones a server consults, in the operator's order.
type Lists struct {
	dns   Querier
	zones []string
}

// New returns the lists of zones, asked through q; nil when zones is empty,
// so that a server without lists asks nothing.
func New(q Querier, zones []string) *Lists {
	if len(zones) == 0 {
		return nil
	}
	return &Lists{dns: q, zones: zones}
}

// Verdict is what the lists say of one address.
type Verdict struct {
	// Listed is set when a list names the address: the first such zone
	// in the operator's order, and the answer it gave.
	Listed *Listed
	// Problems are the lists that could not answer: a DNS failure, or one
	// of the list's own error codes (127.255.255.0/24: quota exceeded,
	// queries through an open resolver refused). The address is not held
	// against the client for them.
	Problems []error
}

// Result is the verdict in one word, for metrics and logs: "listed",
// "error" (no list names it, but some could not answer) or "clean".
func (v Verdict) Result() string {
	switch {
	case v.Listed != nil:
		return "listed"
	case len(v.Problems) > 0:
		return "error"
	}
	return "clean"
}

// Listed is a listing, as an error: the refusal of a listed client.
type Listed struct {
	IP   netip.Addr
	Zone string
	Code netip.Addr // the A record, whose value says why (list-specific)
}

func (l *Listed) Error() string {
	return fmt.Sprintf("client %s listed at %s (%s)", l.IP, l.Zone, l.Code)
}

// listCodes (127.0.0.0/8) are how a list says "listed"; errorCodes, within
// them, are how it says it will not answer (Spamhaus: 127.255.255.252 typo
// in the zone, .254 query through a public resolver, .255 quota exceeded).
var (
	listCodes  = netip.MustParsePrefix("127.0.0.0/8")
	errorCodes = netip.MustParsePrefix("127.255.255.0/24")
)

// Check asks every zone about ip at once, so that the slowest list, not
// their sum, is what a client waits for.
func (l *Lists) Check(ctx context.Context, ip netip.Addr) Verdict {
	listed := make([]*Listed, len(l.zones))
	problems := make([]error, len(l.zones))
	var wg sync.WaitGroup
	for i, zone := range l.zones {
		wg.Go(func() { listed[i], problems[i] = l.ask(ctx, ip, zone) })
	}
	wg.Wait()
	var v Verdict
	for i := range l.zones {
		if listed[i] != nil && v.Listed == nil {
			v.Listed = listed[i]
		}
		if problems[i] != nil {
			v.Problems = append(v.Problems, problems[i])
		}
	}
	return v
}

// ask looks ip up in one zone.
func (l *Lists) ask(ctx context.Context, ip netip.Addr, zone string) (*Listed, error) {
	name := Name(ip, zone)
	rrs, _, err := l.dns.Query(ctx, name, dns.TypeA)
	if errors.Is(err, resolver.ErrNXDomain) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("dnsbl %s: %w", zone, err)
	}
	var outside []string
	for _, rr := range rrs {
		a, ok := rr.(*dns.A)
		if !ok {
			continue
		}
		code, ok := netip.AddrFromSlice(a.A.To4())
		switch {
		case !ok:
		case errorCodes.Contains(code):
			return nil, fmt.Errorf("dnsbl %s: the list answered error code %s for %s (quota exceeded, or queries through a public resolver refused)", zone, code, ip)
		case listCodes.Contains(code):
			return &Listed{IP: ip, Zone: zone, Code: code}, nil
		default:
			outside = append(outside, code.String())
		}
	}
	if outside != nil {
		// Not a list's answer: a resolver that makes up addresses for
		// missing names (ads, captive portals) would otherwise list everyone.
		return nil, fmt.Errorf("dnsbl %s: answer %s for %s is outside 127.0.0.0/8, ignored", zone, strings.Join(outside, ","), ip)
	}
	return nil, nil
}

// Name is the name asked of zone about ip: the four octets of an IPv4
// address reversed, an IPv6 address as its 32 nibbles reversed (RFC 5782
// 2.1 and 2.4).
func Name(ip netip.Addr, zone string) string {
	ip = ip.Unmap()
	var b strings.Builder
	if ip.Is4() {
		a := ip.As4()
		for i := 3; i >= 0; i-- {
			fmt.Fprintf(&b, "%d.", a[i])
		}
	} else {
		const hex = "0123456789abcdef"
		a := ip.As16()
		for i := 15; i >= 0; i-- {
			b.WriteByte(hex[a[i]&0xf])
			b.WriteByte('.')
			b.WriteByte(hex[a[i]>>4])
			b.WriteByte('.')
		}
	}
	b.WriteString(strings.TrimSuffix(zone, "."))
	return b.String()
}
