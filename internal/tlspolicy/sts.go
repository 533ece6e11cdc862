package tlspolicy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"facteur/internal/mtasts"
	"facteur/internal/remote"
	"facteur/internal/tlsrpt"
)

// STS makes the Policies.STS of the MTA-STS policies get returns
// (mtasts.Cache.Get). def is outbound.tls, which testing mode keeps; roots
// are those Verify trusts (nil: the system pool), for testing mode's audit.
func STS(get func(ctx context.Context, domain string) mtasts.Result, def remote.Policy, roots *x509.CertPool,
	log *slog.Logger) func(ctx context.Context, domain string) func(host string) remote.HostTLS {
	return func(ctx context.Context, domain string) func(string) remote.HostTLS {
		r := get(ctx, domain)
		p := r.Policy
		switch {
		case r.Err != nil:
			return fetchFailed(domain, def, r.Err)
		case p == nil || p.Mode == mtasts.None:
			return nil
		}
		report := tlsrpt.Policy{Type: tlsrpt.PolicySTS, Strings: p.Lines(), Domain: domain, MXHosts: p.MX}
		if p.Mode == mtasts.Enforce {
			return func(host string) remote.HostTLS {
				ht := remote.HostTLS{Mode: remote.Verify, Name: "mta-sts", Why: "mta-sts enforce", Report: report}
				if !p.Matches(host) {
					ht.Refuse = mxMismatch(p, host)
				}
				return ht
			}
		}
		// Testing: deliver as without a policy, and report what enforce
		// would have refused.
		audit := func(host string, cs tls.ConnectionState) error {
			var err error
			if p.Matches(host) {
				err = webPKI(roots, host, cs)
			} else {
				err = mxMismatch(p, host)
			}
			if err != nil {
				log.Warn("mta-sts testing: the policy in enforce mode would refuse this delivery", "domain", domain, "host", host, "err", err)
			}
			return err
		}
		return func(string) remote.HostTLS { return remote.HostTLS{Mode: def, Audit: audit, Report: report} }
	}
}

// fetchFailed is the policy of a domain that announces an MTA-STS policy
// which could not be had: delivery goes on as without one, and each session
// TLS secures reports the failure.
func fetchFailed(domain string, def remote.Policy, err error) func(string) remote.HostTLS {
	typ := tlsrpt.STSPolicyFetchError
	switch {
	case errors.As(err, new(*mtasts.InvalidError)):
		typ = tlsrpt.STSPolicyInvalid
	case errors.As(err, new(*tls.CertificateVerificationError)):
		typ = tlsrpt.STSWebPKIInvalid
	}
	failure := &tlsrpt.Failure{Type: typ, Err: err}
	ht := remote.HostTLS{Mode: def, Report: tlsrpt.Policy{Type: tlsrpt.PolicySTS, Domain: domain},
		Audit: func(string, tls.ConnectionState) error { return failure }}
	return func(string) remote.HostTLS { return ht }
}

func mxMismatch(p *mtasts.Policy, host string) error {
	return fmt.Errorf("MX host %s does not match the policy (mx: %s)", host, strings.Join(p.MX, ", "))
}

// webPKI checks the server's certificate as Verify does: a chain to roots,
// valid for host.
func webPKI(roots *x509.CertPool, host string, cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{DNSName: host, Roots: roots, Intermediates: inter})
	return err
}
