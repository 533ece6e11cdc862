package resolver

import (
	"context"
	"errors"
	"net"
	"strings"

	"github.com/miekg/dns"
)

// The Lookup methods answer like net.Resolver's, so that libraries written
// against it (SPF, DKIM verification) ask our one resolver: a name with no
// such records, or that does not exist, is a *net.DNSError with IsNotFound;
// any other failure is a *net.DNSError with IsTemporary, which those
// libraries turn into a temporary error rather than a verdict.

// LookupTXT returns name's TXT records, each record's strings joined as
// RFC 7208 3.3 and RFC 6376 3.6.2.2 ask.
func (r *Resolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	rrs, err := r.netQuery(ctx, name, dns.TypeTXT)
	var out []string
	for _, rr := range rrs {
		out = append(out, strings.Join(rr.(*dns.TXT).Txt, ""))
	}
	return out, err
}

// LookupMX returns name's MX records as the DNS gave them.
func (r *Resolver) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	rrs, err := r.netQuery(ctx, name, dns.TypeMX)
	var out []*net.MX
	for _, rr := range rrs {
		m := rr.(*dns.MX)
		out = append(out, &net.MX{Host: m.Mx, Pref: m.Preference})
	}
	return out, err
}

// LookupIPAddr returns host's IPv6 and IPv4 addresses.
func (r *Resolver) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error) {
	addrs, _, err := r.Addrs(ctx, host)
	if err != nil {
		return nil, netError(host, err)
	}
	if len(addrs) == 0 {
		return nil, &net.DNSError{Err: "no such host", Name: host, Server: r.server, IsNotFound: true}
	}
	out := make([]net.IPAddr, len(addrs))
	for i, a := range addrs {
		out[i] = net.IPAddr{IP: a.AsSlice()}
	}
	return out, nil
}

// LookupAddr returns the names of addr's PTR records.
func (r *Resolver) LookupAddr(ctx context.Context, addr string) ([]string, error) {
	name, err := dns.ReverseAddr(addr)
	if err != nil {
		return nil, &net.DNSError{Err: err.Error(), Name: addr}
	}
	rrs, err := r.netQuery(ctx, name, dns.TypePTR)
	var out []string
	for _, rr := range rrs {
		out = append(out, rr.(*dns.PTR).Ptr)
	}
	return out, err
}

// netQuery is Query with net.Resolver's errors.
func (r *Resolver) netQuery(ctx context.Context, name string, qtype uint16) ([]dns.RR, error) {
	rrs, _, err := r.Query(ctx, name, qtype)
	if err != nil {
		return nil, netError(name, err)
	}
	if len(rrs) == 0 {
		return nil, &net.DNSError{Err: "no such host", Name: name, Server: r.server, IsNotFound: true}
	}
	return rrs, nil
}

func netError(name string, err error) error {
	if errors.Is(err, ErrNXDomain) {
		return &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return dnsErr
	}
	return &net.DNSError{Err: err.Error(), Name: name, IsTemporary: true}
}
