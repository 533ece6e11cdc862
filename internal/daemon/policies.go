package daemon

import (
	"log/slog"

	"facteur/internal/config"
	"facteur/internal/dane"
	"facteur/internal/remote"
	"facteur/internal/resolver"
	"facteur/internal/tlspolicy"
)

// tlsPolicies assembles how sessions with MX hosts are secured: DANE where
// it applies, else outbound.tls (def).
func tlsPolicies(cfg *config.Config, log *slog.Logger, dnsc *resolver.Resolver, def remote.Policy) *tlspolicy.Policies {
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
	return p
}
