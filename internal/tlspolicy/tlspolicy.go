// Package tlspolicy decides how the session with each MX host of a
// recipient domain is secured, in the order the standards give: DANE for a
// host with DNSSEC-signed TLSA records (RFC 7672), else the domain's MTA-STS
// policy (RFC 8461; DANE wins where both apply, RFC 8461 2), else the
// configured outbound.tls.
package tlspolicy

import (
	"context"

	"facteur/internal/mx"
	"facteur/internal/remote"
	"facteur/internal/tlsrpt"
)

// Policies implements remote.TLSPolicies.
type Policies struct {
	// Default is outbound.tls, for hosts no policy covers.
	Default remote.Policy
	// DANE, when set, gives the DANE policy of a host whose MX and
	// addresses are secure: ok is false when the host has no usable
	// secure TLSA records, and a failure to learn whether it has is a
	// HostTLS that refuses the host.
	DANE func(ctx context.Context, domain string, h mx.Host) (ht remote.HostTLS, ok bool)
	// STS, when set, gives the domain's MTA-STS policy as a function of
	// the MX host name, nil when the domain has none in force.
	STS func(ctx context.Context, domain string) func(host string) remote.HostTLS
}

// HostTLS implements remote.TLSPolicies.
func (p *Policies) HostTLS(ctx context.Context, domain string, hosts []mx.Host) []remote.HostTLS {
	var sts func(string) remote.HostTLS
	if p.STS != nil {
		sts = p.STS(ctx, domain)
	}
	out := make([]remote.HostTLS, len(hosts))
	for i, h := range hosts {
		out[i] = p.host(ctx, domain, h, sts)
	}
	return out
}

func (p *Policies) host(ctx context.Context, domain string, h mx.Host, sts func(string) remote.HostTLS) remote.HostTLS {
	if p.DANE != nil && h.Secure {
		if ht, ok := p.DANE(ctx, domain, h); ok {
			return ht
		}
	}
	if sts != nil {
		return sts(h.Name)
	}
	return remote.HostTLS{Mode: p.Default, Report: tlsrpt.Policy{Type: tlsrpt.NoPolicy, Domain: domain}}
}
