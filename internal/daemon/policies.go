package daemon

import (
	"log/slog"

	"facteur/internal/config"
	"facteur/internal/dane"
	"facteur/internal/mtasts"
	"facteur/internal/remote"
	"facteur/internal/resolver"
	"facteur/internal/tlspolicy"
)

// tlsPolicies assembles how sessions with MX hosts are secured: DANE where
// it applies, else the domain's MTA-STS policy in sts (nil when off), else
// outbound.tls (def).
func tlsPolicies(cfg *config.Config, log *slog.Logger, dnsc *resolver.Resolver, def remote.Policy, sts *mtasts.Cache) *tlspolicy.Policies {
	p := &tlspolicy.Policies{Default: def}
	switch {
	case !cfg.Outbound.DANE:
	case !dnsc.TrustsAD():
		// Said once at start: the operator asked for DANE (the default)
		// and does not get it.
		log.Warn("DANE is off: the AD bit of the dns resolver is not trusted off loopback; "+
			"run a validating resolver (unbound) on this machine and set dns to it, "+
			"or set outbound.dnssec_trusted if the path to it is secure", "dns", dnsc.Server())
	default:
		p.DANE = dane.Policy{Resolver: dnsc}.HostTLS
	}
	if sts != nil {
		p.STS = tlspolicy.STS(sts.Get, def, nil, log)
	}
	return p
}
