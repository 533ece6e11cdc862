// Package tlsrpt holds what SMTP TLS reporting (RFC 8460) says about one
// session with an MX host: the policy in force and the result type. The
// relay records one Session per connection attempt; the daily counters and
// the reports sent to the domains that ask for them are built on these.
package tlsrpt

import (
	"errors"
	"net/netip"
)

// Result types (RFC 8460 4.3).
const (
	StartTLSNotSupported    = "starttls-not-supported"
	CertificateHostMismatch = "certificate-host-mismatch"
	CertificateExpired      = "certificate-expired"
	CertificateNotTrusted   = "certificate-not-trusted"
	ValidationFailure       = "validation-failure"
	TLSAInvalid             = "tlsa-invalid"
	DNSSECInvalid           = "dnssec-invalid"
	DANERequired            = "dane-required"
	STSPolicyFetchError     = "sts-policy-fetch-error"
	STSPolicyInvalid        = "sts-policy-invalid"
	STSWebPKIInvalid        = "sts-webpki-invalid"
)

// Policy types (RFC 8460 4.4, "policy-type").
const (
	PolicySTS  = "sts"
	PolicyTLSA = "tlsa"
	NoPolicy   = "no-policy-found"
)

// Policy is the policy in force for a session, as a report names it.
type Policy struct {
	Type    string   // PolicySTS, PolicyTLSA or NoPolicy
	Strings []string // "policy-string": the STS policy's lines, or the TLSA records
	Domain  string   // "policy-domain": the recipient domain
	MXHosts []string // "mx-host": the STS policy's mx patterns
}

// Session is the outcome of one attempt at a session with one MX host.
type Session struct {
	Policy      Policy
	Failure     string // a result type; "" when the session was secured as the policy asks
	Reason      string // "failure-reason-code": the error, for the report's reader
	SendingIP   netip.Addr
	ReceivingIP netip.Addr
	ReceivingMX string
}

// Failure is an error that knows its result type, as the checks of a policy
// (DANE, MTA-STS) return them.
type Failure struct {
	Type string
	Err  error
}

func (f *Failure) Error() string { return f.Err.Error() }
func (f *Failure) Unwrap() error { return f.Err }

// TypeOf is the result type err carries, or "" when it carries none.
func TypeOf(err error) string {
	var f *Failure
	if errors.As(err, &f) {
		return f.Type
	}
	return ""
}
