package smtptest

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// ttl of every record served; long enough that a test never sees one expire.
const ttl = 300

// DNSServer is an authoritative-looking DNS server for tests, on UDP and TCP
// of one loopback port. Names it knows nothing about answer NOERROR with no
// records (NODATA). Records may be changed at any time, also while queried.
type DNSServer struct {
	addr string

	mu        sync.Mutex
	names     map[string]*dnsName
	queries   map[string]int
	secureAll bool // SecureAll: names without their own say are signed
}

// dnsName is everything served for one owner name.
type dnsName struct {
	mx    []*dns.MX
	a     []net.IP
	aaaa  []net.IP
	cname string
	other []dns.RR // every other type, as given to RR, TXT or PTR
	rcode int      // dns.RcodeSuccess unless NXDomain or ServFail set it
	mute  bool     // Timeout: never answer
	// secure: answers for the name carry the AD bit, as a validating
	// resolver's do for a signed zone; nil follows SecureAll.
	secure *bool
}

// NewDNS starts a DNS server on 127.0.0.1 and a random port, stopped by t.Cleanup.
func NewDNS(t testing.TB) *DNSServer {
	t.Helper()
	s := &DNSServer{names: map[string]*dnsName{}, queries: map[string]int{}}
	l, pc := listenBoth(t)
	s.addr = l.Addr().String()
	for _, srv := range []*dns.Server{{Listener: l, Handler: s}, {PacketConn: pc, Handler: s}} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go srv.ActivateAndServe()
		<-started
		t.Cleanup(func() { srv.Shutdown() })
	}
	return s
}

// listenBoth finds a port free for both TCP and UDP, as resolvers expect.
func listenBoth(t testing.TB) (net.Listener, net.PacketConn) {
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("smtptest: dns listen tcp: %v", err)
		}
		port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
		pc, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", port))
		if err == nil {
			return l, pc
		}
		l.Close()
	}
	t.Fatalf("smtptest: dns: no port free on both tcp and udp")
	return nil, nil
}

// Addr is the server's "host:port".
func (s *DNSServer) Addr() string { return s.addr }

// MX adds an MX record; host "." makes it a null MX.
func (s *DNSServer) MX(domain string, pref uint16, host string) {
	s.edit(domain, func(n *dnsName) {
		n.mx = append(n.mx, &dns.MX{Preference: pref, Mx: dns.Fqdn(host)})
	})
}

// NullMX declares that domain accepts no mail (RFC 7505).
func (s *DNSServer) NullMX(domain string) { s.MX(domain, 0, ".") }

// A adds an IPv4 address record.
func (s *DNSServer) A(name, ip string) {
	addr := parseIP(ip)
	s.edit(name, func(n *dnsName) { n.a = append(n.a, addr) })
}

// AAAA adds an IPv6 address record.
func (s *DNSServer) AAAA(name, ip string) {
	addr := parseIP(ip)
	s.edit(name, func(n *dnsName) { n.aaaa = append(n.aaaa, addr) })
}

// CNAME makes name an alias of target. Like an authoritative server that
// does not hold target's zone, the answer carries only the CNAME record.
func (s *DNSServer) CNAME(name, target string) {
	s.edit(name, func(n *dnsName) { n.cname = dns.Fqdn(target) })
}

// RR adds a record written as in a zone file ("name TTL IN TYPE data", the
// TTL and class optional); facteur dns records prints such lines, so a test
// can publish exactly what an operator would.
func (s *DNSServer) RR(zoneLine string) {
	rr, err := dns.NewRR(zoneLine)
	if err != nil || rr == nil {
		panic(fmt.Sprintf("smtptest: bad record %q: %v", zoneLine, err))
	}
	s.edit(rr.Header().Name, func(n *dnsName) { n.other = append(n.other, rr) })
}

// TXT adds one TXT record made of the given character strings.
func (s *DNSServer) TXT(name string, strs ...string) {
	rr := &dns.TXT{Hdr: dns.RR_Header{Name: dns.Fqdn(name), Rrtype: dns.TypeTXT, Class: dns.ClassINET}, Txt: strs}
	s.edit(name, func(n *dnsName) { n.other = append(n.other, rr) })
}

// PTR adds a reverse record naming host for the address ip.
func (s *DNSServer) PTR(ip, host string) {
	name, err := dns.ReverseAddr(ip)
	if err != nil {
		panic("smtptest: not an IP address: " + ip)
	}
	rr := &dns.PTR{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypePTR, Class: dns.ClassINET}, Ptr: dns.Fqdn(host)}
	s.edit(name, func(n *dnsName) { n.other = append(n.other, rr) })
}

// Secure makes the answers for name (records, NODATA or NXDOMAIN) carry the
// AD bit or not, whatever SecureAll says: the server then plays a validating
// resolver in front of a zone signed with DNSSEC, or an unsigned one.
func (s *DNSServer) Secure(name string, on bool) {
	s.edit(name, func(n *dnsName) { n.secure = &on })
}

// SecureAll makes every name without its own Secure setting answer with the
// AD bit (on) or without it (off, the default).
func (s *DNSServer) SecureAll(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.secureAll = on
}

// Remove deletes every record of type qtype (dns.TypeTXT...) at name,
// however it was added.
func (s *DNSServer) Remove(name string, qtype uint16) {
	s.edit(name, func(n *dnsName) {
		switch qtype {
		case dns.TypeMX:
			n.mx = nil
		case dns.TypeA:
			n.a = nil
		case dns.TypeAAAA:
			n.aaaa = nil
		}
		n.other = slices.DeleteFunc(n.other, func(rr dns.RR) bool { return rr.Header().Rrtype == qtype })
	})
}

// NXDomain makes name answer "no such domain".
func (s *DNSServer) NXDomain(name string) {
	s.edit(name, func(n *dnsName) { n.rcode = dns.RcodeNameError })
}

// ServFail makes name answer SERVFAIL.
func (s *DNSServer) ServFail(name string) {
	s.edit(name, func(n *dnsName) { n.rcode = dns.RcodeServerFailure })
}

// Recover undoes ServFail, NXDomain and Timeout: name answers with its
// records again, as a name server does once its trouble is over.
func (s *DNSServer) Recover(name string) {
	s.edit(name, func(n *dnsName) { n.rcode, n.mute = dns.RcodeSuccess, false })
}

// Timeout makes queries for name go unanswered.
func (s *DNSServer) Timeout(name string) {
	s.edit(name, func(n *dnsName) { n.mute = true })
}

// Queries counts the queries received for name, of any type.
func (s *DNSServer) Queries(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queries[key(name)]
}

func (s *DNSServer) edit(name string, f func(*dnsName)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := key(name)
	n := s.names[k]
	if n == nil {
		n = &dnsName{}
		s.names[k] = n
	}
	f(n)
}

// ServeDNS implements dns.Handler.
func (s *DNSServer) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	resp := new(dns.Msg)
	if len(req.Question) != 1 {
		w.WriteMsg(resp.SetRcode(req, dns.RcodeFormatError))
		return
	}
	resp.SetReply(req)
	resp.Authoritative = true
	q := req.Question[0]
	opt := req.IsEdns0()
	if !s.answer(resp, q, opt != nil && opt.Do()) {
		return
	}
	if _, udp := w.RemoteAddr().(*net.UDPAddr); udp {
		size := dns.MinMsgSize
		if opt := req.IsEdns0(); opt != nil {
			size = int(opt.UDPSize())
		}
		// Sets TC when the answer does not fit, so clients retry over TCP.
		resp.Truncate(size)
	}
	w.WriteMsg(resp)
}

// answer fills resp for q, asked with the DO bit or not, and reports whether
// to send it at all.
func (s *DNSServer) answer(resp *dns.Msg, q dns.Question, do bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := key(q.Name)
	s.queries[k]++
	n := s.names[k]
	// Like a validating resolver, AD only for a client that asked with DO.
	resp.AuthenticatedData = do && s.secureAll
	if n != nil && n.secure != nil {
		resp.AuthenticatedData = do && *n.secure
	}
	if n == nil {
		return true
	}
	if n.mute {
		return false
	}
	if n.rcode != dns.RcodeSuccess {
		resp.Rcode = n.rcode
		return true
	}
	hdr := func(t uint16) dns.RR_Header {
		return dns.RR_Header{Name: q.Name, Rrtype: t, Class: dns.ClassINET, Ttl: ttl}
	}
	if n.cname != "" && q.Qtype != dns.TypeCNAME {
		resp.Answer = append(resp.Answer, &dns.CNAME{Hdr: hdr(dns.TypeCNAME), Target: n.cname})
		return true
	}
	switch q.Qtype {
	case dns.TypeMX:
		for _, mx := range n.mx {
			resp.Answer = append(resp.Answer, &dns.MX{Hdr: hdr(dns.TypeMX), Preference: mx.Preference, Mx: mx.Mx})
		}
	case dns.TypeA:
		for _, ip := range n.a {
			resp.Answer = append(resp.Answer, &dns.A{Hdr: hdr(dns.TypeA), A: ip})
		}
	case dns.TypeAAAA:
		for _, ip := range n.aaaa {
			resp.Answer = append(resp.Answer, &dns.AAAA{Hdr: hdr(dns.TypeAAAA), AAAA: ip})
		}
	case dns.TypeCNAME:
		if n.cname != "" {
			resp.Answer = append(resp.Answer, &dns.CNAME{Hdr: hdr(dns.TypeCNAME), Target: n.cname})
		}
	}
	for _, rr := range n.other {
		if rr.Header().Rrtype == q.Qtype {
			rr = dns.Copy(rr)
			*rr.Header() = hdr(q.Qtype)
			resp.Answer = append(resp.Answer, rr)
		}
	}
	return true
}

func key(name string) string {
	return strings.ToLower(strings.TrimSuffix(name, "."))
}

func parseIP(s string) net.IP {
	ip := net.ParseIP(s)
	if ip == nil {
		panic("smtptest: not an IP address: " + s)
	}
	return ip
}
