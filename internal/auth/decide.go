package auth

import (
	"fmt"
	"strings"

	"github.com/emersion/go-msgauth/dmarc"
)

// Mode is what the verdicts may do ([inbound] dmarc).
type Mode int

const (
	// Enforce refuses and quarantines as the sender's DMARC policy asks.
	Enforce Mode = iota
	// Tag only writes the verdicts into the message.
	Tag
	// Off is Tag without the DMARC lookup.
	Off
)

// ParseMode reads "enforce", "tag" or "off".
func ParseMode(s string) (Mode, error) {
	switch s {
	case "enforce":
		return Enforce, nil
	case "tag":
		return Tag, nil
	case "off":
		return Off, nil
	}
	return 0, fmt.Errorf("%q is not one of enforce, tag, off", s)
}

func (m Mode) String() string { return [...]string{"enforce", "tag", "off"}[m] }

// Action is what the verdicts call for.
type Action int

const (
	Inbox Action = iota
	// Junk: DMARC fails and the domain asks for quarantine.
	Junk
	// Reject: DMARC fails and the domain asks for rejection.
	Reject
	// RejectSPF: SPF fails for a domain without DMARC (RFC 7372 5.7.23).
	RejectSPF
	// RejectFrom: no From: domain to judge (RFC 7489 6.6.1).
	RejectFrom
	// Defer: a lookup failed for now; the sender should retry.
	Defer
)

// Action tells what to do with the message, and why in a few words for
// the sender when it is not Inbox.
func (v *Verdict) Action(mode Mode) (Action, string) {
	if mode != Enforce {
		return Inbox, ""
	}
	if v.FromProblem != "" {
		return RejectFrom, v.FromProblem
	}
	d := v.DMARC
	switch {
	case d.Result == Pass:
		return Inbox, ""
	case d.Result == TempError || v.SPF.Result == TempError || hasResult(v.DKIM, TempError):
		return Defer, "temporary DNS failure while checking SPF, DKIM or DMARC of " + v.From
	case d.Result == Fail && d.Policy == dmarc.PolicyReject:
		return Reject, "DMARC policy of " + v.From + " rejects this message: " + d.Reason
	case d.Result == Fail && d.Policy == dmarc.PolicyQuarantine:
		return Junk, ""
	case d.Result == Fail:
		return Inbox, ""
	case v.SPF.Result == Fail:
		// No DMARC record (or a broken one): SPF decides.
		return RejectSPF, "SPF of " + v.SPF.Domain + " does not allow this client to send its mail"
	}
	return Inbox, ""
}

// LogAttrs are the verdicts for a log line: spf=pass dkim=pass
// dmarc=pass, several DKIM results comma-separated.
func (v *Verdict) LogAttrs() []any {
	dkim := string(None)
	if len(v.DKIM) > 0 {
		rs := make([]string, len(v.DKIM))
		for i, d := range v.DKIM {
			rs[i] = string(d.Result)
		}
		dkim = strings.Join(rs, ",")
	}
	attrs := []any{"spf", string(v.SPF.Result), "dkim", dkim}
	if v.DMARC.Result != "" {
		attrs = append(attrs, "dmarc", string(v.DMARC.Result))
	}
	return attrs
}
