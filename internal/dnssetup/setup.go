// Package dnssetup knows the DNS records a domain needs for its mail to be
// delivered to facteur and trusted when facteur sends it (MX, A/AAAA, PTR,
// SPF, DKIM, DMARC, the TLSRPT address of RFC 8460, and the MTA-STS policy
// of RFC 8461 with the file to serve over HTTPS): it writes them for the
// operator to publish, and checks what a resolver answers against them.
package dnssetup

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	"facteur/internal/config"
	"facteur/internal/dkim"
)

// Setup is what the configuration says about the mail host: its name, the
// addresses the MX listeners are on, and the signing keys.
type Setup struct {
	Hostname string
	// Addrs are the specific addresses of the smtp and smtps listeners.
	// facteur sends from the address the system picks, which on a mail
	// host is the one it receives on, so these are also its sending
	// addresses.
	Addrs []netip.Addr
	// Unspecified are the listeners whose address names no specific host
	// address ("0.0.0.0:25", "[::]:25", ":25", a host name): this host's
	// public addresses must then come from DNS.
	Unspecified []string
	Keys        *dkim.Keys
	// Cert is the certificate the listeners serve, for the TLSA record;
	// nil before the self-signed one is made at first start.
	Cert *x509.Certificate
	// RootCAs are trusted when fetching MTA-STS policies; nil means the
	// system's, as senders use.
	RootCAs *x509.CertPool
}

// New reads the Setup out of a configuration, the keys loaded from its
// keys_dir and the certificate it serves.
func New(cfg *config.Config, keys *dkim.Keys, cert *x509.Certificate) *Setup {
	s := &Setup{Hostname: cfg.Hostname, Keys: keys, Cert: cert}
	for _, l := range slices.Concat(cfg.Listen.SMTP, cfg.Listen.SMTPS) {
		host, _, _ := net.SplitHostPort(l) // config.Load has checked the form
		a, err := netip.ParseAddr(host)
		if err != nil || a.IsUnspecified() {
			s.Unspecified = append(s.Unspecified, l)
			continue
		}
		a = a.Unmap().WithZone("")
		if !slices.Contains(s.Addrs, a) {
			s.Addrs = append(s.Addrs, a)
		}
	}
	return s
}

// Domains are the domains to publish or check: args when given, else the
// configuration's local domains but "localhost", which no DNS serves.
func Domains(cfg *config.Config, args []string) ([]string, error) {
	if len(args) == 0 {
		ds := slices.DeleteFunc(slices.Clone(cfg.Domains), func(d string) bool { return d == "localhost" })
		if len(ds) == 0 {
			return nil, errors.New("no domain: the configuration's domains are only localhost; name the domains, or set domains")
		}
		return ds, nil
	}
	var out []string
	for _, a := range args {
		d := strings.TrimSuffix(strings.ToLower(a), ".")
		if !hostName(d) {
			return nil, fmt.Errorf("%q is not a domain name (letters, digits and '-', in xn-- form for others)", a)
		}
		out = append(out, d)
	}
	return out, nil
}

// hostName accepts the domain names mail uses: two labels or more, of
// letters, digits and inner hyphens (RFC 1123 2.1).
func hostName(d string) bool {
	labels := strings.Split(d, ".")
	if len(labels) < 2 || len(d) > 253 {
		return false
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// public reports whether the Internet can reach a: an address behind NAT
// or on loopback is not what DNS should publish.
func public(a netip.Addr) bool { return a.IsGlobalUnicast() && !a.IsPrivate() }

// publicAddrs are the listener addresses to publish for the host name.
func (s *Setup) publicAddrs() []netip.Addr {
	var out []netip.Addr
	for _, a := range s.Addrs {
		if public(a) {
			out = append(out, a)
		}
	}
	return out
}

// addrsKnown reports whether the listeners name every public address
// facteur receives and sends on, so SPF may list them: none is a wildcard,
// or private, which hides a public address behind NAT. Loopback listeners
// serve this host alone and say nothing of its public addresses.
func (s *Setup) addrsKnown() bool {
	for _, a := range s.Addrs {
		if !public(a) && !a.IsLoopback() {
			return false
		}
	}
	return len(s.Unspecified) == 0 && len(s.publicAddrs()) > 0
}

// keysFor are the keys that sign mail from domain, its own or a parent's.
func (s *Setup) keysFor(domain string) []*dkim.Key {
	if s.Keys == nil {
		return nil
	}
	return s.Keys.For(domain)
}

// sameHost compares DNS names, case and final dot aside.
func sameHost(a, b string) bool {
	return strings.EqualFold(strings.TrimSuffix(a, "."), strings.TrimSuffix(b, "."))
}
