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
	// trustAD: the server's AD bit is believed. DNSSEC validation is the
	// resolver's job; its verdict is worth something only when the path to
	// it cannot be tampered with: loopback, or what the operator vouches for.
	trustAD bool
}

// Answer is what Lookup found for one question.
type Answer struct {
	RRs []dns.RR
	TTL uint32 // the smallest TTL seen, at most MaxTTL
	// Secure: every response on the way (CNAMEs included) carried the AD
	// bit of a trusted resolver, so the records, or their absence, were
	// validated with DNSSEC. DANE (RFC 7672) relies on it.
	Secure bool
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
		server:  server,
		udp:     &dns.Client{Net: "udp", Timeout: timeout},
		tcp:     &dns.Client{Net: "tcp", Timeout: timeout},
		trustAD: onLoopback(server),
	}, nil
}

// onLoopback reports whether server ("host:port") is on this machine, where
// no one on the path can forge the AD bit.
func onLoopback(server string) bool {
	host, _, err := net.SplitHostPort(server)
	if err != nil {
		return false
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

// TrustAD makes r believe the AD bit of its server even off loopback: the
// operator says the path to it is secure (`[outbound] dnssec_trusted`).
func (r *Resolver) TrustAD() { r.trustAD = true }

// TrustsAD reports whether r believes its server's AD bit: without it,
// nothing is ever Secure.
func (r *Resolver) TrustsAD() bool { return r.trustAD }

// Server is the "host:port" asked.
func (r *Resolver) Server() string { return r.server }

// exchange sends one query over UDP, and again over TCP when the answer was
// truncated.
func (r *Resolver) exchange(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	// The DO bit asks a validating resolver to validate and say so with AD
	// (RFC 6840 5.7); a resolver that does not validate ignores it.
	m.SetEdns0(ednsSize, true)
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
	a, err := r.Lookup(ctx, name, qtype)
	return a.RRs, a.TTL, err
}

// Lookup is Query that also says whether the answer was validated. For a name
// that does not exist, the error wraps ErrNXDomain and the Answer still says
// whether that denial was validated.
func (r *Resolver) Lookup(ctx context.Context, name string, qtype uint16) (Answer, error) {
	a := Answer{TTL: MaxTTL, Secure: r.trustAD}
	target := dns.Fqdn(name)
	for range maxCNAME {
		in, err := r.exchange(ctx, target, qtype)
		if err != nil {
			return Answer{}, err
		}
		a.Secure = a.Secure && in.AuthenticatedData
		switch in.Rcode {
		case dns.RcodeSuccess:
		case dns.RcodeNameError:
			return Answer{Secure: a.Secure}, fmt.Errorf("%s: %w", target, ErrNXDomain)
		default:
			return Answer{}, fmt.Errorf("%s %s: server answered %s", target, dns.TypeToString[qtype], dns.RcodeToString[in.Rcode])
		}
		// A recursive resolver puts the chain and the final records in one
		// answer; an authoritative server may give only the first CNAME.
		next, chainTTL := followCNAMEs(in.Answer, target)
		a.TTL = min(a.TTL, chainTTL)
		for _, rr := range in.Answer {
			h := rr.Header()
			if h.Rrtype == qtype && strings.EqualFold(h.Name, next) {
				a.RRs = append(a.RRs, rr)
				a.TTL = min(a.TTL, h.Ttl)
			}
		}
		if len(a.RRs) > 0 || strings.EqualFold(next, target) {
			return a, nil
		}
		target = next
	}
	return Answer{}, fmt.Errorf("%s: CNAME chain longer than %d", name, maxCNAME)
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
	a, err := r.Addresses(ctx, name)
	return a.Addrs, a.TTL, err
}

// Addresses are the addresses of one name, as Resolver.Addresses found them.
type Addresses struct {
	Addrs []netip.Addr
	TTL   uint32
	// Secure: both queries were answered and validated (an AAAA
	// NODATA too), as RFC 7672 2.2.2 wants of an MX host before DANE.
	Secure bool
}

// Addresses is Addrs that also says whether the addresses were validated.
func (r *Resolver) Addresses(ctx context.Context, name string) (Addresses, error) {
	out := Addresses{TTL: MaxTTL, Secure: r.trustAD}
	var errs []error
	for _, qtype := range []uint16{dns.TypeAAAA, dns.TypeA} {
		a, err := r.Lookup(ctx, name, qtype)
		out.Secure = out.Secure && err == nil && a.Secure
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, rr := range a.RRs {
			var ip []byte
			switch rr := rr.(type) {
			case *dns.AAAA:
				ip = rr.AAAA
			case *dns.A:
				ip = rr.A.To4()
			}
			if addr, ok := netip.AddrFromSlice(ip); ok {
				out.Addrs = append(out.Addrs, addr)
			}
		}
		if len(a.RRs) > 0 {
			out.TTL = min(out.TTL, a.TTL)
		}
	}
	if len(out.Addrs) == 0 && len(errs) > 0 {
		return Addresses{}, errors.Join(errs...)
	}
	return out, nil
}
