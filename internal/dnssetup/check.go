package dnssetup

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	"blitiri.com.ar/go/spf"
	"github.com/emersion/go-msgauth/dmarc"

	"facteur/internal/auth"
	"facteur/internal/dkim"
	"facteur/internal/resolver"
	"facteur/internal/tlsrpt"
	"facteur/internal/zone"
)

// Status is the verdict of one check.
type Status int

const (
	OK Status = iota
	Warn
	Fail
)

func (s Status) String() string { return [...]string{"ok", "warn", "FAIL"}[s] }

// Result is one check: what was asked, what was found and, when it is not
// ok, how to fix it.
type Result struct {
	Status  Status
	Subject string // "example.org SPF", "192.0.2.25 PTR"
	Text    string
}

func (r Result) String() string { return fmt.Sprintf("%-4s  %s: %s", r.Status, r.Subject, r.Text) }

// Resolver is what the checks ask DNS; *resolver.Resolver answers it as
// net.Resolver does, which the SPF library also wants.
type Resolver interface {
	LookupTXT(ctx context.Context, name string) ([]string, error)
	LookupMX(ctx context.Context, name string) ([]*net.MX, error)
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
	LookupAddr(ctx context.Context, addr string) ([]string, error)
	// Lookup is a query of any type, saying whether DNSSEC validated it.
	Lookup(ctx context.Context, name string, qtype uint16) (resolver.Answer, error)
}

// Check asks r whether DNS says what Records would publish, and what
// receivers look for: the host's addresses and their reverse DNS, then for
// each domain its MX, SPF, DKIM, DMARC, TLSRPT and MTA-STS records. It gives report one
// Result per check, as soon as it is known.
func (s *Setup) Check(ctx context.Context, r Resolver, domains []string, report func(Result)) {
	c := &checker{Setup: s, ctx: ctx, r: r, report: report, keys: map[string]bool{}}
	c.host()
	for _, a := range c.senders {
		c.ptr(a)
	}
	c.tlsa()
	for _, d := range domains {
		c.mx(d)
		spfPass := c.spf(d)
		keys := c.dkim(d)
		if rec := c.dmarc(d); rec != nil {
			c.alignment(d, rec, keys, spfPass)
		}
		c.tlsrpt(d)
		c.mtasts(d)
	}
}

type checker struct {
	*Setup
	ctx    context.Context
	r      Resolver
	report func(Result)
	// hostAddrs are the host name's addresses in DNS; senders those facteur
	// sends from, as far as it can tell.
	hostAddrs []netip.Addr
	senders   []netip.Addr
	// keys tells, by record name, whether each key checked is published.
	keys map[string]bool
}

func (c *checker) say(st Status, subject, format string, args ...any) {
	c.report(Result{Status: st, Subject: subject, Text: fmt.Sprintf(format, args...)})
}

// notFound tells an answer that the name has no such records.
func notFound(err error) bool {
	var dnsErr *net.DNSError
	return errors.Is(err, resolver.ErrNXDomain) || errors.As(err, &dnsErr) && dnsErr.IsNotFound
}

// lookupFailed reports err unless it says the name has no such records.
func (c *checker) lookupFailed(subject string, err error) bool {
	if err == nil || notFound(err) {
		return false
	}
	c.say(Fail, subject, "lookup failed: %v", err)
	return true
}

// host checks that the host name has addresses, that those facteur listens
// on are among them, and decides which addresses the later checks verify:
// the listeners', or the host name's when the listeners do not tell.
func (c *checker) host() {
	subject := c.Hostname + " A/AAAA"
	if !hostName(c.Hostname) {
		c.say(Fail, subject, "%q is no name in public DNS; fix: set hostname = \"mx.example.org\" (say) in the configuration", c.Hostname)
		c.senders = c.publicAddrs()
		return
	}
	ips, err := c.r.LookupIPAddr(c.ctx, c.Hostname)
	if c.lookupFailed(subject, err) {
		c.senders = c.publicAddrs()
		return
	}
	for _, ip := range ips {
		if a, ok := netip.AddrFromSlice(ip.IP); ok {
			c.hostAddrs = append(c.hostAddrs, a.Unmap())
		}
	}
	if len(c.hostAddrs) == 0 {
		c.say(Fail, subject, "no address record; fix: publish %s", recordLines(c.addrRecords()))
		c.senders = c.publicAddrs()
		return
	}
	var listed, missing []netip.Addr
	for _, a := range c.Addrs {
		switch {
		case slices.Contains(c.hostAddrs, a):
			listed = append(listed, a)
		case public(a):
			missing = append(missing, a)
		}
	}
	c.senders = append(listed, missing...)
	var extra []netip.Addr
	for _, a := range c.hostAddrs {
		if !slices.Contains(c.Addrs, a) {
			extra = append(extra, a)
		}
	}
	switch {
	case len(missing) > 0:
		var fix []string
		for _, a := range missing {
			fix = append(fix, addrLine(c.Hostname, a))
		}
		c.say(Fail, subject, "%s, but facteur listens on %s; fix: publish %s", joinAddrs(c.hostAddrs), joinAddrs(missing), strings.Join(fix, " and "))
	case len(listed) == 0:
		c.senders = c.hostAddrs
		c.say(Warn, subject, "%s, taken as the addresses facteur receives and sends on: %s", joinAddrs(c.hostAddrs), c.whyUnknown())
	case len(extra) > 0 && len(c.Unspecified) == 0:
		c.say(Warn, subject, "%s, but facteur listens only on %s: remove the others, or listen on them", joinAddrs(c.hostAddrs), joinAddrs(listed))
	default:
		c.say(OK, subject, "%s", joinAddrs(c.hostAddrs))
	}
}

// ptr checks forward-confirmed reverse DNS: a's PTR names the host, which
// has a among its addresses.
func (c *checker) ptr(a netip.Addr) {
	subject := a.String() + " PTR"
	fix := fmt.Sprintf("have whoever owns the address (the hosting provider's panel) publish %s", c.ptrRecord(a).Line)
	names, err := c.r.LookupAddr(c.ctx, a.String())
	switch {
	case c.lookupFailed(subject, err):
	case len(names) == 0:
		c.say(Fail, subject, "no PTR record, and receivers distrust an address without reverse DNS; fix: %s", fix)
	case !slices.ContainsFunc(names, func(n string) bool { return sameHost(n, c.Hostname) }):
		c.say(Fail, subject, "%s, not %s, the name facteur gives in HELO; fix: %s", strings.Join(names, ", "), c.Hostname, fix)
	case !slices.Contains(c.hostAddrs, a):
		c.say(Fail, subject, "%s, which does not resolve back to %s (the reverse DNS is not forward-confirmed); fix: publish %s",
			c.Hostname, a, addrLine(c.Hostname, a))
	default:
		c.say(OK, subject, "%s, which resolves back to %s", c.Hostname, a)
	}
}

func (c *checker) mx(domain string) {
	subject := domain + " MX"
	fix := c.mxRecord(domain).Line
	mxs, err := c.r.LookupMX(c.ctx, domain)
	if c.lookupFailed(subject, err) {
		return
	}
	found := make([]string, len(mxs))
	for i, m := range mxs {
		found[i] = fmt.Sprintf("%d %s", m.Pref, m.Host)
	}
	switch {
	case len(mxs) == 0:
		c.say(Fail, subject, "no MX record; fix: publish %s", fix)
	case len(mxs) == 1 && mxs[0].Host == ".":
		c.say(Fail, subject, "a null MX: %s says it receives no mail; fix: publish %s instead", domain, fix)
	case !slices.ContainsFunc(mxs, func(m *net.MX) bool { return sameHost(m.Host, c.Hostname) }):
		c.say(Fail, subject, "%s, not %s; fix: publish %s", strings.Join(found, ", "), c.Hostname, fix)
	default:
		c.say(OK, subject, "%s", strings.Join(found, ", "))
	}
}

// spf checks that the domain's SPF record exists and passes each sending
// address, as a receiver evaluates mail from postmaster@domain, and
// reports whether all passed. The SPF domain is then domain itself, which
// aligns with DMARC in either mode.
func (c *checker) spf(domain string) bool {
	subject := domain + " SPF"
	fix := c.spfRecord(domain).Line
	txts, err := c.r.LookupTXT(c.ctx, domain)
	if c.lookupFailed(subject, err) {
		return false
	}
	var recs []string
	for _, t := range txts {
		if l := strings.ToLower(t); l == "v=spf1" || strings.HasPrefix(l, "v=spf1 ") {
			recs = append(recs, t)
		}
	}
	switch {
	case len(recs) == 0:
		c.say(Fail, subject, "no SPF record; fix: publish %s", fix)
		return false
	case len(recs) > 1:
		c.say(Fail, subject, "%d SPF records (%s), which receivers take as an error; fix: keep one, as %s", len(recs), quote(recs), fix)
		return false
	case len(c.senders) == 0:
		c.say(Warn, subject, "%q, not evaluated: no address of %s is known", recs[0], c.Hostname)
		return false
	}
	var bad []string
	advice := "authorise " + joinAddrs(c.senders) + " in it"
	for _, a := range c.senders {
		res, err := spf.CheckHostWithSender(a.AsSlice(), c.Hostname, "postmaster@"+domain,
			spf.WithResolver(c.r), spf.WithContext(c.ctx))
		if res == spf.Pass {
			continue
		}
		why := fmt.Sprintf("%s for %s", res, a)
		if (res == spf.PermError || res == spf.TempError) && err != nil {
			why += " (" + err.Error() + ")"
		}
		if res == spf.PermError {
			advice = "correct it"
		}
		bad = append(bad, why)
	}
	if len(bad) > 0 {
		c.say(Fail, subject, "%q gives %s; fix: %s, as %s", recs[0], strings.Join(bad, ", "), advice, fix)
		return false
	}
	c.say(OK, subject, "%q passes %s", recs[0], joinAddrs(c.senders))
	return true
}

// dkim checks that each key signing the domain's mail is published under
// its selector, and returns those that are.
func (c *checker) dkim(domain string) []*dkim.Key {
	keys := c.keysFor(domain)
	if len(keys) == 0 {
		c.say(Warn, domain+" DKIM", "no key signs mail from %s, and Gmail and Yahoo want DKIM; fix: facteur dkim keygen --domain %s", domain, domain)
		return nil
	}
	var good []*dkim.Key
	for _, k := range keys {
		subject := domain + " DKIM " + k.Name()
		ok, done := c.keys[k.Name()]
		switch {
		case !done: // a parent's key serves several domains: checked once
			ok = c.published(subject, k)
			c.keys[k.Name()] = ok
		case ok:
			c.say(OK, subject, "as above")
		default:
			c.say(Fail, subject, "as above")
		}
		if ok {
			good = append(good, k)
		}
	}
	return good
}

// published checks that k's record publishes k, and only k.
func (c *checker) published(subject string, k *dkim.Key) bool {
	fix := zone.TXT(k.Name(), k.Record())
	txts, err := c.r.LookupTXT(c.ctx, k.Name())
	if c.lookupFailed(subject, err) {
		return false
	}
	if len(txts) == 0 {
		c.say(Fail, subject, "no record for the key in %s; fix: publish %s", k.File, fix)
		return false
	}
	var problems []string
	for _, t := range txts {
		if err := matchKey(k, t); err != nil {
			problems = append(problems, fmt.Sprintf("%q: %v", shorten(t), err))
		}
	}
	if len(problems) > 0 {
		c.say(Fail, subject, "%s; fix: publish only %s", strings.Join(problems, "; "), fix)
		return false
	}
	c.say(OK, subject, "the %s key of %s", keyDesc(k), k.File)
	return true
}

// dmarc checks the domain's DMARC record, or its organizational domain's
// (RFC 7489 6.6.3), and returns it when it parses.
func (c *checker) dmarc(domain string) *dmarc.Record {
	subject := domain + " DMARC"
	fix := dmarcRecord(domain).Line
	recs, at, err := c.dmarcRecords(domain)
	if c.lookupFailed(subject, err) {
		return nil
	}
	switch {
	case len(recs) == 0 && at != domain:
		c.say(Fail, subject, "no record at _dmarc.%s nor at _dmarc.%s; fix: publish %s", domain, at, fix)
		return nil
	case len(recs) == 0:
		c.say(Fail, subject, "no record at _dmarc.%s; fix: publish %s", domain, fix)
		return nil
	case len(recs) > 1:
		c.say(Fail, subject, "%d records at _dmarc.%s (%s), so receivers apply none; fix: keep one, as %s", len(recs), at, quote(recs), fix)
		return nil
	}
	rec, err := dmarc.Parse(recs[0])
	if err != nil {
		c.say(Fail, subject, "%q does not parse (%v); fix: publish %s", recs[0], err, fix)
		return nil
	}
	found := fmt.Sprintf("%q", recs[0])
	policy := rec.Policy
	if at != domain {
		found += " of " + at
		if rec.SubdomainPolicy != "" {
			policy = rec.SubdomainPolicy
		}
	}
	if policy == dmarc.PolicyNone {
		c.say(Warn, subject, "%s: p=none only asks for reports; once the reports are clean, move to p=quarantine, then to p=reject", found)
	} else {
		c.say(OK, subject, "%s", found)
	}
	return rec
}

// dmarcRecords returns the DMARC records of domain, or else of its
// organizational domain, and the domain they were found at.
func (c *checker) dmarcRecords(domain string) ([]string, string, error) {
	at := domain
	for {
		txts, err := c.r.LookupTXT(c.ctx, "_dmarc."+at)
		var dnsErr *net.DNSError
		if err != nil && !(errors.As(err, &dnsErr) && dnsErr.IsNotFound) {
			return nil, at, err
		}
		var recs []string
		for _, t := range txts {
			// Only records starting with the version tag count (RFC 7489 6.6.3).
			if v, _, _ := strings.Cut(strings.ReplaceAll(t, " ", ""), ";"); v == "v=DMARC1" {
				recs = append(recs, t)
			}
		}
		if len(recs) > 0 || at == auth.OrgDomain(domain) {
			return recs, at, nil
		}
		at = auth.OrgDomain(domain)
	}
}

// tlsrpt checks the domain's TLSRPT record, which is optional: without
// one, senders keep their TLS failures to themselves.
func (c *checker) tlsrpt(domain string) {
	name := tlsrpt.RecordName(domain)
	subject := domain + " TLSRPT"
	fix := tlsrptRecord(domain).Line
	txts, err := c.r.LookupTXT(c.ctx, name)
	if c.lookupFailed(subject, err) {
		return
	}
	rec, err := tlsrpt.FindRecord(txts)
	switch {
	case errors.Is(err, tlsrpt.ErrNoRecord):
		c.say(Warn, subject, "no record at %s: senders do not report when they cannot deliver to %s securely; to hear of it, publish %s",
			name, domain, fix)
	case err != nil:
		c.say(Fail, subject, "%v, so senders send no report; fix: publish only %s", err, fix)
	default:
		c.say(OK, subject, "reports to %s", strings.Join(slices.Concat(rec.Mailto, rec.Other), ", "))
	}
}

// alignment checks that DKIM or SPF passes for a domain that aligns with
// the From domain, which DMARC requires (RFC 7489 3.1).
func (c *checker) alignment(domain string, rec *dmarc.Record, keys []*dkim.Key, spfPass bool) {
	subject := domain + " DMARC alignment"
	var aligned []string
	for _, k := range keys {
		if auth.Aligned(k.Domain, domain, rec.DKIMAlignment == dmarc.AlignmentStrict) {
			aligned = append(aligned, "DKIM (d="+k.Domain+")")
			break
		}
	}
	if spfPass {
		aligned = append(aligned, "SPF ("+domain+")")
	}
	if len(aligned) == 0 {
		c.say(Fail, subject, "neither DKIM nor SPF passes for %s, so receivers apply p=%s to its mail; fix: the DKIM and SPF lines above", domain, rec.Policy)
		return
	}
	c.say(OK, subject, "%s pass for %s", strings.Join(aligned, " and "), domain)
}

func recordLines(recs []Record) string {
	var lines []string
	for _, r := range recs {
		if r.Line != "" {
			lines = append(lines, r.Line)
		} else {
			lines = append(lines, r.Comment)
		}
	}
	return strings.Join(lines, " and ")
}

func quote(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", shorten(s))
	}
	return strings.Join(q, ", ")
}

// shorten keeps a long record, a key's, readable on one line.
func shorten(s string) string {
	if len(s) <= 60 {
		return s
	}
	return s[:50] + "..." + s[len(s)-7:]
}
