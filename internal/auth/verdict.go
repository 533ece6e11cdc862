package auth

import (
	"context"
	"errors"
	"strings"

	"github.com/emersion/go-msgauth/authres"
	"github.com/emersion/go-msgauth/dmarc"

	"facteur/internal/header"
)

// Verdict is everything the checks found about one message.
type Verdict struct {
	SPF   SPF
	DKIM  []DKIM
	DMARC DMARC // zero when DMARC is off
	// From is the From: domain; "" when the message has no From: or
	// addresses of several domains there (FromProblem says which).
	From        string
	FromProblem string
}

// DMARC is the verdict on the From: domain.
type DMARC struct {
	Result Result
	// Policy is what the domain asks for when the message fails: p=, or
	// sp= for a subdomain covered by its organization's record; "" when
	// the domain publishes no record (or a broken one, RFC 7489 6.6.3).
	Policy dmarc.Policy
	Reason string
	from   string
}

func (d DMARC) authres() authres.Result {
	return &authres.DMARCResult{Value: authres.ResultValue(d.Result), Reason: d.Reason, From: d.from}
}

// Verdict waits for the DKIM verdicts of the message, read to its end,
// and judges its From: domain by DMARC when withDMARC. spf is the
// envelope's verdict, from Checker.SPF.
func (m *Message) Verdict(spf SPF, withDMARC bool) *Verdict {
	v := &Verdict{SPF: spf, DKIM: <-m.dkim}
	v.From, v.FromProblem = fromDomain(m.from, m.ended)
	if withDMARC && v.From != "" {
		v.DMARC = m.c.dmarc(m.ctx, v)
	}
	return v
}

// fromDomain is the one domain of the From: field (RFC 7489 6.6.1).
func fromDomain(values []string, ended bool) (domain, problem string) {
	if len(values) == 0 {
		return "", "no From: header field"
	}
	if len(values) > 1 {
		return "", "several From: header fields"
	}
	addrs, err := header.Addresses(values[0])
	if err != nil || len(addrs) == 0 {
		return "", "the From: header field does not parse as addresses"
	}
	for _, a := range addrs {
		d := domainOf(a.Address)
		switch {
		case d == "":
			return "", "a From: address without a domain"
		case domain != "" && d != domain:
			return "", "From: addresses of several domains"
		}
		domain = d
	}
	return domain, ""
}

// dmarc finds the policy of v.From and whether the message passes it.
func (c *Checker) dmarc(ctx context.Context, v *Verdict) DMARC {
	d := DMARC{from: v.From}
	rec, sub, err := c.lookupDMARC(ctx, v.From)
	switch {
	case errors.Is(err, dmarc.ErrNoPolicy):
		d.Result = None
		return d
	case dmarc.IsTempFail(err):
		d.Result, d.Reason = TempError, err.Error()
		return d
	case err != nil:
		// A broken record is no policy (RFC 7489 6.6.3).
		d.Result, d.Reason = PermError, err.Error()
		return d
	}
	d.Policy = rec.Policy
	if sub && rec.SubdomainPolicy != "" {
		d.Policy = rec.SubdomainPolicy
	}
	spfAligned := v.SPF.Result == Pass && Aligned(v.SPF.Domain, v.From, rec.SPFAlignment == dmarc.AlignmentStrict)
	dkimAligned := false
	for _, k := range v.DKIM {
		if k.Result == Pass && Aligned(k.Domain, v.From, rec.DKIMAlignment == dmarc.AlignmentStrict) {
			dkimAligned = true
		}
	}
	switch {
	case spfAligned || dkimAligned:
		d.Result = Pass
	case v.SPF.Result == TempError || hasResult(v.DKIM, TempError):
		// What failed to answer might have passed.
		d.Result, d.Reason = TempError, "SPF or DKIM could not be checked"
	default:
		d.Result, d.Reason = Fail, "neither SPF nor DKIM passes aligned with the From: domain"
	}
	return d
}

// lookupDMARC finds the record of domain, else of its organizational
// domain (RFC 7489 6.6.3); sub tells that the second one answered.
func (c *Checker) lookupDMARC(ctx context.Context, domain string) (rec *dmarc.Record, sub bool, err error) {
	opts := &dmarc.LookupOptions{LookupTXT: func(name string) ([]string, error) { return c.r.LookupTXT(ctx, name) }}
	rec, err = dmarc.LookupWithOptions(domain, opts)
	if org := OrgDomain(domain); errors.Is(err, dmarc.ErrNoPolicy) && org != strings.ToLower(domain) {
		rec, err = dmarc.LookupWithOptions(org, opts)
		sub = true
	}
	return rec, sub, err
}

func hasResult(ds []DKIM, r Result) bool {
	for _, d := range ds {
		if d.Result == r {
			return true
		}
	}
	return false
}
