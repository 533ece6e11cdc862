package dnssetup

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strings"

	"facteur/internal/mtasts"
	"facteur/internal/zone"
)

// stsMaxAge is the max_age of the policy we suggest: a week, as RFC 8461
// suggests, so that a sender that saw it once holds to it through any
// attack shorter than that.
const stsMaxAge = 604800

// stsPolicy is the MTA-STS policy file a domain whose mail goes to facteur
// serves, in mode.
func (s *Setup) stsPolicy(mode mtasts.Mode) string {
	return fmt.Sprintf("version: STSv1\nmode: %s\nmx: %s\nmax_age: %d\n", mode, s.Hostname, stsMaxAge)
}

// stsID is the id of a policy in its TXT record, made from the policy so
// that it changes when the policy does and is the same on every run.
func stsID(policy string) string {
	sum := sha256.Sum256([]byte(policy))
	return hex.EncodeToString(sum[:8])
}

// stsRecords are the TXT record announcing domain's policy and, as a
// comment, the policy file to serve: in testing mode first, as a new
// policy should start.
func (s *Setup) stsRecords(domain string) []Record {
	testing, enforce := s.stsPolicy(mtasts.Testing), s.stsPolicy(mtasts.Enforce)
	file := "MTA-STS policy: serve this file as text/plain at " + mtasts.URL(domain) +
		" (mta-sts." + domain + " must resolve to a web server with a certificate valid for that name); " +
		"once the TLS reports show no failures, change mode: testing to mode: enforce, and the id above to id=" + stsID(enforce) + ":"
	for line := range strings.Lines(testing) {
		file += "\n    " + strings.TrimSuffix(line, "\n")
	}
	return []Record{
		{
			Comment: fmt.Sprintf("MTA-STS: senders that support it (RFC 8461) deliver mail for %s only over TLS with a valid certificate, "+
				"to the MX hosts the policy below names; the id changes whenever the policy does", domain),
			Line: zone.TXT("_mta-sts."+domain, "v=STSv1; id="+stsID(testing)),
		},
		{Comment: file},
	}
}

// mtasts checks the domain's MTA-STS policy, which is optional: the TXT
// record, then the policy it announces, fetched as senders do, whose mx
// must name this host.
func (c *checker) mtasts(domain string) {
	subject := domain + " MTA-STS"
	name := "_mta-sts." + domain
	fix := c.stsRecords(domain)[0].Line
	txts, err := c.r.LookupTXT(c.ctx, name)
	if c.lookupFailed(subject, err) {
		return
	}
	id, ok := mtasts.ParseRecord(txts)
	if !ok {
		if !strings.Contains(strings.Join(txts, "\n"), "v=STSv1") {
			c.say(Warn, subject, "no record at %s: an attacker on the path can make senders deliver to %s without TLS; "+
				"to ask for TLS, serve the policy file 'facteur dns records' prints, then publish %s", name, domain, fix)
			return
		}
		c.say(Fail, subject, "%s is not one v=STSv1 record with an id (%s), so senders ignore it; fix: publish only %s", name, quote(txts), fix)
		return
	}
	p, err := mtasts.Fetch(c.ctx, mtasts.NewClient(c.addrs, c.RootCAs), domain)
	if err != nil {
		c.say(Fail, subject, "id=%s, but %v; fix: serve the policy file 'facteur dns records' prints at %s, or remove the record at %s",
			id, err, mtasts.URL(domain), name)
		return
	}
	found := fmt.Sprintf("id=%s, mode: %s, mx: %s, max_age: %d", id, p.Mode, strings.Join(p.MX, ", "), int64(p.MaxAge.Seconds()))
	switch {
	case p.Mode == mtasts.None:
		c.say(Warn, subject, "%s: the policy is withdrawn", found)
	case !p.Matches(c.Hostname):
		c.say(Fail, subject, "%s, which does not name %s, so senders that enforce it refuse to deliver to facteur; fix: mx: %s in the policy, and a new id",
			found, c.Hostname, c.Hostname)
	case p.Mode == mtasts.Testing:
		c.say(Warn, subject, "%s: senders only report failures; once the TLS reports are clean, change it to mode: enforce, and the id", found)
	default:
		c.say(OK, subject, "%s", found)
	}
}

// addrs resolves the policy server's name with the checks' resolver.
func (c *checker) addrs(ctx context.Context, host string) ([]netip.Addr, error) {
	ips, err := c.r.LookupIPAddr(ctx, host)
	var out []netip.Addr
	for _, ip := range ips {
		if a, ok := netip.AddrFromSlice(ip.IP); ok {
			out = append(out, a.Unmap())
		}
	}
	return out, err
}
