// Package dane secures the session with an MX host by the TLSA records that
// its DNSSEC-signed zone publishes at _25._tcp.<host> (DANE for SMTP, RFC
// 7672, on RFC 6698 and RFC 7671): such records make TLS mandatory for the
// host and say which certificate it must present, so that neither a
// stripped STARTTLS nor a forged certificate gets a message through.
//
// What is done, and what is not:
//   - Usable records are DANE-TA(2) and DANE-EE(3) with the selectors and
//     matching types of RFC 6698; PKIX-TA(0) and PKIX-EE(1) are unusable
//     for SMTP (RFC 7672 3.1.3). A secure RRset with no usable record makes
//     TLS mandatory without authenticating the server (RFC 7672 2.2).
//   - The TLSA base domain is the MX host name as the MX record gives it:
//     MX targets that are CNAMEs (forbidden by RFC 2181 10.3, allowed for
//     by RFC 7672 2.2.3) are not expanded first.
//   - A DANE-TA(2) record must match a certificate the server sends, as RFC
//     7672 3.1.2 asks of servers, except a full certificate (2 0 0), which
//     is a trust anchor by itself; a bare public key (2 1 0) for a trust
//     anchor the server leaves out of its chain is not supported.
package dane

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/miekg/dns"

	"facteur/internal/mx"
	"facteur/internal/remote"
	"facteur/internal/resolver"
	"facteur/internal/tlsrpt"
)

// Certificate usages, selectors and matching types (RFC 6698 2.1, names of
// RFC 7218).
const (
	usageDANETA = 2
	usageDANEEE = 3

	selectorCert = 0
	selectorSPKI = 1

	matchFull   = 0
	matchSHA256 = 1
	matchSHA512 = 2
)

// Resolver asks the DNS and says whether the answer was validated;
// *resolver.Resolver is one.
type Resolver interface {
	Lookup(ctx context.Context, name string, qtype uint16) (resolver.Answer, error)
}

// Policy finds the DANE policy of MX hosts.
type Policy struct {
	Resolver Resolver
}

// HostTLS returns how to secure the session with h, an MX host of domain
// whose MX and address records are secure: ok is false when DANE does not
// apply (no TLSA records, or records that DNSSEC does not cover), and the
// caller goes on with MTA-STS or its default. A failed lookup refuses the
// host: its records may exist, and delivering without them would be what
// an attacker who drops the answer wants (RFC 7672 2.1.1).
func (p Policy) HostTLS(ctx context.Context, domain string, h mx.Host) (ht remote.HostTLS, ok bool) {
	name := "_25._tcp." + strings.TrimSuffix(h.Name, ".")
	report := tlsrpt.Policy{Type: tlsrpt.PolicyTLSA, Domain: domain}
	ans, err := p.Resolver.Lookup(ctx, name, dns.TypeTLSA)
	switch {
	case errors.Is(err, resolver.ErrNXDomain):
		return remote.HostTLS{}, false
	case err != nil:
		return remote.HostTLS{Mode: remote.Required, Name: "dane", Why: "dane", Report: report,
			Refuse: &tlsrpt.Failure{Type: tlsrpt.DNSSECInvalid, Err: fmt.Errorf("TLSA lookup failed: %w", err)}}, true
	case !ans.Secure || len(ans.RRs) == 0:
		// Records in a zone that is not signed are worth no more than
		// the STARTTLS line they would protect (RFC 7672 2.2).
		return remote.HostTLS{}, false
	}
	var usable []record
	for _, rr := range ans.RRs {
		t, isTLSA := rr.(*dns.TLSA)
		if !isTLSA {
			continue
		}
		r, err := parse(t)
		report.Strings = append(report.Strings, r.String())
		if err == nil {
			usable = append(usable, r)
		}
	}
	ht = remote.HostTLS{Mode: remote.Required, Name: "dane", Why: "dane", Report: report}
	if len(usable) == 0 {
		// The domain says TLS works there, but none of its records can
		// authenticate the server: encrypt all the same (RFC 7672 2.2).
		return ht, true
	}
	v := &verifier{records: usable, domain: domain}
	ht.Check, ht.Key = v.check, v.key()
	return ht, true
}

// record is one TLSA record, its association data decoded.
type record struct {
	usage, selector, matching uint8
	data                      []byte
}

// parse decodes t, and says why it is unusable for SMTP if it is. An
// unusable record is still returned, for reports.
func parse(t *dns.TLSA) (record, error) {
	r := record{usage: t.Usage, selector: t.Selector, matching: t.MatchingType}
	data, err := hex.DecodeString(t.Certificate)
	if err != nil {
		return r, fmt.Errorf("association data is not hex: %w", err)
	}
	r.data = data
	switch {
	case r.usage != usageDANETA && r.usage != usageDANEEE:
		return r, fmt.Errorf("usage %d is not for SMTP", r.usage)
	case r.selector != selectorCert && r.selector != selectorSPKI:
		return r, fmt.Errorf("unknown selector %d", r.selector)
	case r.matching == matchSHA256 && len(data) != sha256.Size,
		r.matching == matchSHA512 && len(data) != sha512.Size,
		r.matching == matchFull && len(data) == 0:
		return r, fmt.Errorf("association data of %d bytes for matching type %d", len(data), r.matching)
	case r.matching > matchSHA512:
		return r, fmt.Errorf("unknown matching type %d", r.matching)
	}
	return r, nil
}

// String is the record in presentation form without owner and TTL, as a
// TLS report's policy-string gives it.
func (r record) String() string {
	return fmt.Sprintf("%d %d %d %s", r.usage, r.selector, r.matching, strings.ToUpper(hex.EncodeToString(r.data)))
}

// matches reports whether cert is the one r designates.
func (r record) matches(cert *x509.Certificate) bool {
	b := cert.Raw
	if r.selector == selectorSPKI {
		b = cert.RawSubjectPublicKeyInfo
	}
	switch r.matching {
	case matchSHA256:
		sum := sha256.Sum256(b)
		b = sum[:]
	case matchSHA512:
		sum := sha512.Sum512(b)
		b = sum[:]
	}
	return bytes.Equal(b, r.data)
}

// verifier judges the certificates of one MX host of domain by its usable
// TLSA records.
type verifier struct {
	records []record
	domain  string
}

// key tells sessions checked by different records apart in the idle pool.
// With DANE-TA records the names accepted include the recipient domain, so
// the domain is part of it.
func (v *verifier) key() string {
	var lines []string
	ta := false
	for _, r := range v.records {
		lines = append(lines, r.String())
		ta = ta || r.usage == usageDANETA
	}
	slices.Sort(lines)
	if ta {
		lines = append(lines, "domain "+strings.ToLower(v.domain))
	}
	sum := sha256.Sum256([]byte(strings.Join(lines, "\n")))
	return "dane " + hex.EncodeToString(sum[:16])
}

// check is remote.HostTLS.Check: the server's certificate must be the one
// a DANE-EE record pins (name and dates unchecked, RFC 7672 3.1.1), or
// chain to a certificate a DANE-TA record pins and be valid for the MX host
// name or the recipient domain (RFC 7672 3.1.2, 3.2.2).
func (v *verifier) check(host string, cs tls.ConnectionState) error {
	chain := cs.PeerCertificates
	if len(chain) == 0 {
		return &tlsrpt.Failure{Type: tlsrpt.ValidationFailure, Err: errors.New("the server sent no certificate")}
	}
	roots := x509.NewCertPool()
	anchored := false
	for _, r := range v.records {
		switch r.usage {
		case usageDANEEE:
			if r.matches(chain[0]) {
				return nil
			}
		case usageDANETA:
			for _, c := range chain {
				if r.matches(c) {
					roots.AddCert(c)
					anchored = true
				}
			}
			if r.selector == selectorCert && r.matching == matchFull {
				if c, err := x509.ParseCertificate(r.data); err == nil {
					roots.AddCert(c)
					anchored = true
				}
			}
		}
	}
	if !anchored {
		return &tlsrpt.Failure{Type: tlsrpt.TLSAInvalid,
			Err: fmt.Errorf("no TLSA record of _25._tcp.%s matches the certificates the server sent", host)}
	}
	opts := x509.VerifyOptions{Roots: roots, Intermediates: x509.NewCertPool()}
	for _, c := range chain[1:] {
		opts.Intermediates.AddCert(c)
	}
	// The error for the MX host name is the one to report: the domain is
	// only a second chance (RFC 7672 3.2.2).
	var first error
	for _, name := range []string{host, v.domain} {
		opts.DNSName = name
		_, err := chain[0].Verify(opts)
		if err == nil {
			return nil
		}
		if first == nil {
			first = err
		}
	}
	// Not a tlsrpt.Failure: the x509 error tells remote the result type
	// (certificate-host-mismatch, certificate-expired...).
	return fmt.Errorf("certificate does not chain to a DANE-TA record of _25._tcp.%s: %w", host, first)
}
