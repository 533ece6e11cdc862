// Package resolver is facteur's one DNS client: every question the server
// asks (MX, A/AAAA, TXT for SPF, DKIM and DMARC, PTR) goes to the resolver
// of the configuration's `dns` key over miekg/dns, so that tests and
// operators point all of them at one server.
package resolver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// DefaultTimeout bounds one DNS query when New is given none.
const DefaultTimeout = 5 * time.Second

// MaxTTL caps how long an answer may be trusted, whatever its TTL says, so
// that a changed record is noticed within the hour.
const MaxTTL = 3600

// maxCNAME bounds the CNAME chain followed for one name, against loops.
const maxCNAME = 8

// ednsSize is the UDP payload size we advertise: the DNS flag day 2020 value,
// which avoids IP fragmentation; larger answers come over TCP.
const ednsSize = 1232

// ErrNXDomain marks an answer saying the name does not exist.
var ErrNXDomain = errors.New("no such domain")

// Resolver sends queries to one DNS server. It is safe for concurrent use.
type Resolver struct {
	server   string
	udp, tcp *dns.Client
}

// New returns a Resolver asking server ("host:port"; a bare host means port
// 53). An empty server means the first nameserver of /etc/resolv.conf.
// timeout bounds each query; zero means DefaultTimeout.
func New(server string, timeout time.Duration) (*Resolver, error) {
	if server == "" {
		conf, err := dns.ClientConfigFromFile("/etc/resolv.conf")
		if err != nil {
			return nil, fmt.Errorf("resolver: read /etc/resolv.conf: %w", err)
		}
		if len(conf.Servers) == 0 {
			return nil, errors.New("resolver: no nameserver in /etc/resolv.conf")
		}
		server = net.JoinHostPort(conf.Servers[0], conf.Port)
	} else if _, _, err := net.SplitHostPort(server); err != nil {
		server = net.JoinHostPort(server, "53")
	}
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	return &Resolver{
		server: server,
		udp:    &dns.Client{Net: "udp", Timeout: timeout},
		tcp:    &dns.Client{Net: "tcp", Timeout: timeout},
	}, nil
}

// Server is the "host:port" asked.
func (r *Resolver) Server() string { return r.server }

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

// Query returns the records of type qtype for name, following CNAMEs, and
// the smallest TTL seen on the way (at most MaxTTL). No records and no error
// is NODATA; a name that does not exist is an error wrapping ErrNXDomain.
func (r *Resolver) Query(ctx context.Context, name string, qtype uint16) ([]dns.RR, uint32, error) {
	ttl := uint32(MaxTTL)
	target := dns.Fqdn(name)
	for range maxCNAME {
		in, err := r.exchange(ctx, target, qtype)
		if err != nil {
			return nil, 0, err
		}
		switch in.Rcode {
		case dns.RcodeSuccess:
		case dns.RcodeNameError:
			return nil, 0, fmt.Errorf("%s: %w", target, ErrNXDomain)
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
	ttl := uint32(MaxTTL)
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

// Addrs resolves name to its AAAA then A addresses, with the smallest TTL.
// A failure of one query does not hide the other's addresses; an error comes
// back only when there is no address and some query failed.
func (r *Resolver) Addrs(ctx context.Context, name string) ([]netip.Addr, uint32, error) {
	var (
		out  []netip.Addr
		ttl  = uint32(MaxTTL)
		errs []error
	)
	for _, qtype := range []uint16{dns.TypeAAAA, dns.TypeA} {
		rrs, t, err := r.Query(ctx, name, qtype)
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
