package mx

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/miekg/dns"
)

// maxCNAME bounds the CNAME chain followed for one name, against loops.
const maxCNAME = 8

// ednsSize is the UDP payload size we advertise: the DNS flag day 2020 value,
// which avoids IP fragmentation; larger answers come over TCP.
const ednsSize = 1232

// errNXDomain marks an answer saying the name does not exist.
var errNXDomain = errors.New("no such domain")

// exchange sends one query over UDP, and again over TCP when the answer was
// truncated.
func (r *Resolver) exchange(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.SetEdns0(ednsSize, false)
	in, _, err := r.udp.ExchangeContext(ctx, m, r.server)
	if err == nil && in.Truncated {
		in, _, err = r.tcp.ExchangeContext(ctx, m, r.server)
	}
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", name, dns.TypeToString[qtype], err)
	}
	return in, nil
}

// lookup returns the records of type qtype for name, following CNAMEs, and
// the smallest TTL seen on the way. No records and no error is NODATA.
func (r *Resolver) lookup(ctx context.Context, name string, qtype uint16) ([]dns.RR, uint32, error) {
	ttl := uint32(maxTTL)
	target := dns.Fqdn(name)
	for range maxCNAME {
		in, err := r.exchange(ctx, target, qtype)
		if err != nil {
			return nil, 0, err
		}
		switch in.Rcode {
		case dns.RcodeSuccess:
		case dns.RcodeNameError:
			return nil, 0, fmt.Errorf("%s: %w", target, errNXDomain)
		default:
			return nil, 0, fmt.Errorf("%s %s: server answered %s", target, dns.TypeToString[qtype], dns.RcodeToString[in.Rcode])
		}
		// A recursive resolver puts the chain and the final records in one
		// answer; an authoritative server may give only the first CNAME.
		next, chainTTL := followCNAMEs(in.Answer, target)
		ttl = min(ttl, chainTTL)
		var rrs []dns.RR
		for _, rr := range in.Answer {
			h := rr.Header()
			if h.Rrtype == qtype && strings.EqualFold(h.Name, next) {
				rrs = append(rrs, rr)
				ttl = min(ttl, h.Ttl)
			}
		}
		if len(rrs) > 0 || strings.EqualFold(next, target) {
			return rrs, ttl, nil
		}
		target = next
	}
	return nil, 0, fmt.Errorf("%s: CNAME chain longer than %d", name, maxCNAME)
}

// followCNAMEs walks the CNAME records of answer from name and returns the
// last name of the chain and the smallest TTL on it.
func followCNAMEs(answer []dns.RR, name string) (string, uint32) {
	ttl := uint32(maxTTL)
	for range answer {
		found := false
		for _, rr := range answer {
			if c, ok := rr.(*dns.CNAME); ok && strings.EqualFold(c.Hdr.Name, name) {
				name, ttl, found = c.Target, min(ttl, c.Hdr.Ttl), true
				break
			}
		}
		if !found {
			break
		}
	}
	return name, ttl
}

// addrs resolves name to its AAAA then A addresses. A failure of one query
// does not hide the other's addresses; an error comes back only when there is
// no address and some query failed.
func (r *Resolver) addrs(ctx context.Context, name string) ([]netip.Addr, uint32, error) {
	var (
		out  []netip.Addr
		ttl  = uint32(maxTTL)
		errs []error
	)
	for _, qtype := range []uint16{dns.TypeAAAA, dns.TypeA} {
		rrs, t, err := r.lookup(ctx, name, qtype)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, rr := range rrs {
			var ip []byte
			switch rr := rr.(type) {
			case *dns.AAAA:
				ip = rr.AAAA
			case *dns.A:
				ip = rr.A.To4()
			}
			if a, ok := netip.AddrFromSlice(ip); ok {
				out = append(out, a)
			}
		}
		if len(rrs) > 0 {
			ttl = min(ttl, t)
		}
	}
	if len(out) == 0 && len(errs) > 0 {
		return nil, 0, errors.Join(errs...)
	}
	return out, ttl, nil
}
