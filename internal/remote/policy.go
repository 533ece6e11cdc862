package remote

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/netip"

	"facteur/internal/mx"
	"facteur/internal/tlsrpt"
)

// HostTLS is how the session with one MX host must be secured, as the
// recipient domain's policy (DANE, MTA-STS) or the configuration says.
type HostTLS struct {
	Mode Policy
	// Name names the policy in the delivery log and the metrics: "dane",
	// "mta-sts", or "" for Mode's own name.
	Name string
	// Why prefixes the reason of a failure due to the policy, for queue
	// list and bounces ("mta-sts enforce"); "" means Name.
	Why string
	// Check, when set, judges the server's certificate in place of the
	// WebPKI (DANE): Mode must then be Required. A *tlsrpt.Failure it
	// returns gives the failure's result type.
	Check func(host string, cs tls.ConnectionState) error
	// Key tells apart, in the idle pool, sessions whose Check differ (the
	// TLSA records they matched), so that no session is reused under a
	// check it did not pass.
	Key string
	// Audit, when set, judges a session that TLS secured without being
	// made to fail by it (MTA-STS testing): its error is reported, the
	// delivery goes on.
	Audit func(host string, cs tls.ConnectionState) error
	// Refuse, when not nil, forbids the host (an MX an MTA-STS policy
	// does not name): the delivery fails there, transiently, for this
	// reason, and the next host is tried.
	Refuse error
	// Report is the policy as a TLS report names it.
	Report tlsrpt.Policy
}

func (h HostTLS) name() string {
	if h.Name != "" {
		return h.Name
	}
	return h.Mode.String()
}

func (h HostTLS) why() string {
	if h.Why != "" {
		return h.Why
	}
	return h.name()
}

// TLSPolicies decides how each MX host of a domain is to be secured.
type TLSPolicies interface {
	// HostTLS returns one HostTLS per host, in the same order. It is
	// called once per Deliver, with the hosts of one lookup.
	HostTLS(ctx context.Context, domain string, hosts []mx.Host) []HostTLS
}

// hostTLS asks the Client's policies, or applies the configured Policy to
// every host when there are none.
func (c *Client) hostTLS(ctx context.Context, domain string, hosts []mx.Host) []HostTLS {
	if c.Policies != nil {
		return c.Policies.HostTLS(ctx, domain, hosts)
	}
	out := make([]HostTLS, len(hosts))
	for i := range out {
		out[i] = HostTLS{Mode: c.TLS, Report: tlsrpt.Policy{Type: tlsrpt.NoPolicy, Domain: domain}}
	}
	return out
}

// report hands one session's outcome to the Client's Sessions hook, unless
// the session is for TLS reports alone.
func (c *Client) report(d *delivery, domain, host string, local, addr netip.Addr, ht HostTLS, err error) {
	if c.Sessions == nil || d.onlyReports() {
		return
	}
	s := tlsrpt.Session{Policy: ht.Report, SendingIP: local, ReceivingIP: addr, ReceivingMX: host}
	if err != nil {
		s.Failure, s.Reason = failureType(err), err.Error()
	}
	c.Sessions(domain, s)
}

// failureType classifies why TLS could not be had as RFC 8460 does.
func failureType(err error) string {
	if t := tlsrpt.TypeOf(err); t != "" {
		return t
	}
	var host x509.HostnameError
	var invalid x509.CertificateInvalidError
	var unknown x509.UnknownAuthorityError
	switch {
	case errors.Is(err, errNoSTARTTLS):
		return tlsrpt.StartTLSNotSupported
	case errors.As(err, &host):
		return tlsrpt.CertificateHostMismatch
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return tlsrpt.CertificateExpired
	case errors.As(err, &unknown):
		return tlsrpt.CertificateNotTrusted
	}
	return tlsrpt.ValidationFailure
}
