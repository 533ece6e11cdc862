// Package auth finds out who really sent an inbound message: SPF (RFC
// 7208) for the envelope, every DKIM signature (RFC 6376) and DMARC (RFC
// 7489) for the From: domain. It gives the verdicts of one message, the
// Authentication-Results header (RFC 8601) that records them, and what
// they call for; turning that into an SMTP reply is the session's job.
package auth

import (
	"context"
	"errors"
	"net"
	"strings"

	"blitiri.com.ar/go/spf"
	"github.com/emersion/go-msgauth/authres"
	"golang.org/x/net/publicsuffix"
)

// Resolver answers like net.Resolver; *resolver.Resolver is one.
type Resolver interface {
	spf.DNSResolver
	LookupTXT(ctx context.Context, name string) ([]string, error)
}

// Result is the outcome of one check, in the words of RFC 8601.
type Result string

const (
	Pass      Result = "pass"
	Fail      Result = "fail"
	SoftFail  Result = "softfail"
	Neutral   Result = "neutral"
	None      Result = "none"
	TempError Result = "temperror"
	PermError Result = "permerror"
)

// Checker checks messages against the DNS of their senders.
type Checker struct {
	r  Resolver
	id string
}

// New returns a Checker asking r, whose headers carry authservID.
func New(r Resolver, authservID string) *Checker {
	return &Checker{r: r, id: authservID}
}

// AuthservID is the name this server's Authentication-Results carry.
func (c *Checker) AuthservID() string { return c.id }

// OrgDomain is domain's organizational domain (RFC 7489 3.2): the name
// one label below its public suffix.
func OrgDomain(domain string) string {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	if org, err := publicsuffix.EffectiveTLDPlusOne(domain); err == nil {
		return org
	}
	return domain
}

// Aligned tells whether an authenticated domain stands for the From:
// domain (RFC 7489 3.1): the same name when strict, the same organization
// when relaxed.
func Aligned(domain, from string, strict bool) bool {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	from = strings.ToLower(strings.TrimSuffix(from, "."))
	if strict {
		return domain == from
	}
	return OrgDomain(domain) == OrgDomain(from)
}

// temporary tells whether a lookup failed for a reason that may pass
// (SERVFAIL, timeout), rather than for want of the record.
func temporary(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && (de.IsTemporary || de.IsTimeout)
}

// Header renders the verdicts as one Authentication-Results field, one
// method per line, ready to be prepended to the message.
func (v *Verdict) Header(authservID string) string {
	results := []authres.Result{v.SPF.authres()}
	if len(v.DKIM) == 0 {
		results = append(results, &authres.DKIMResult{Value: authres.ResultNone})
	}
	for _, d := range v.DKIM {
		results = append(results, d.authres())
	}
	if v.DMARC.Result != "" {
		results = append(results, v.DMARC.authres())
	}
	var b strings.Builder
	b.WriteString("Authentication-Results: ")
	b.WriteString(authservID)
	for _, r := range results {
		// Format with no identity starts each result with "; ".
		b.WriteString(";\r\n\t")
		b.WriteString(strings.TrimSpace(strings.TrimPrefix(authres.Format("", []authres.Result{r}), "; ")))
	}
	b.WriteString("\r\n")
	return b.String()
}
