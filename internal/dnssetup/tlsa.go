package dnssetup

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/miekg/dns"

	"facteur/internal/zone"
)

// tlsaName is where senders using DANE (RFC 7672) look for the host's
// TLSA records: port 25, where they deliver.
func (s *Setup) tlsaName() string { return "_25._tcp." + s.Hostname }

// tlsaData is the DANE-EE record of the certificate's public key (usage 3,
// selector 1, SHA-256): it survives renewals that keep the key, and names
// and expiry do not matter to it, so a self-signed certificate serves.
func (s *Setup) tlsaData() string {
	sum := sha256.Sum256(s.Cert.RawSubjectPublicKeyInfo)
	return "3 1 1 " + hex.EncodeToString(sum[:])
}

func (s *Setup) tlsaRecord() Record {
	if s.Cert == nil {
		return Record{Comment: fmt.Sprintf("DANE: the certificate is made at first start; run 'facteur dns records' again after it to get %s's TLSA record", s.tlsaName())}
	}
	return Record{
		Comment: "DANE: pins the key of the certificate facteur serves, for senders that check TLSA records (RFC 7672); " +
			"publish it only in a zone signed with DNSSEC, and keep the key when the certificate is renewed " +
			"(certbot --reuse-key), or publish the new key's record a few TTLs before the change",
		Line: fmt.Sprintf("%s IN TLSA %s", zone.Fqdn(s.tlsaName()), s.tlsaData()),
	}
}

// tlsa checks the host's TLSA records against the certificate: a missing
// record is only a missed chance, a record that matches nothing makes
// DANE senders refuse to deliver.
func (c *checker) tlsa() {
	subject := c.tlsaName() + " TLSA"
	if c.Cert == nil {
		c.say(Warn, subject, "no certificate yet to check it against: start facteur once")
		return
	}
	fix := c.tlsaRecord().Line
	a, err := c.r.Lookup(c.ctx, c.tlsaName(), dns.TypeTLSA)
	if err != nil && !notFound(err) {
		c.say(Fail, subject, "lookup failed: %v", err)
		return
	}
	var found []string
	match := false
	for _, rr := range a.RRs {
		t := rr.(*dns.TLSA)
		data := fmt.Sprintf("%d %d %d %s", t.Usage, t.Selector, t.MatchingType, strings.ToLower(t.Certificate))
		found = append(found, data)
		match = match || t.Verify(c.Cert) == nil && (t.Usage == 3 || t.Usage == 1)
	}
	switch {
	case len(found) == 0:
		c.say(Warn, subject, "none: senders using DANE cannot authenticate this host; if the zone is signed with DNSSEC, publish %s", fix)
	case !match:
		c.say(Fail, subject, "%s matches not the certificate facteur serves, and senders using DANE will not deliver to it; fix: publish %s (and remove the others once their TTL has passed)",
			strings.Join(found, ", "), fix)
	case !a.Secure:
		c.say(Warn, subject, "%s matches the certificate, but the answer was not validated with DNSSEC (zone not signed, or the resolver does not validate): senders ignore it",
			strings.Join(found, ", "))
	default:
		c.say(OK, subject, "%s matches the certificate, signed with DNSSEC", strings.Join(found, ", "))
	}
}
