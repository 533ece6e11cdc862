// Package mx finds where mail for a domain goes: its MX hosts in the order to
// try them, with their addresses, or why there is nowhere to go.
package mx

import "net/netip"

// Host is one place to deliver mail for a domain.
type Host struct {
	Name  string       // MX target (or the domain itself for an implicit MX), without trailing dot
	Pref  uint16       // MX preference; lower is tried first
	Addrs []netip.Addr // AAAA results first, then A; shared with the cache, do not modify
	// Secure: the MX records naming the host (or the implicit MX's
	// domain) and the host's addresses were validated with DNSSEC, the
	// condition for DANE (RFC 7672 2.2).
	Secure bool
}

// Error is a failed lookup, classified for the delivery that asked.
type Error struct {
	Domain    string
	Permanent bool   // retrying will not help: bounce
	Enhanced  string // RFC 3463 status, e.g. "5.1.2", "5.1.10", "4.4.3"
	Msg       string
}

func (e *Error) Error() string {
	return "mx " + e.Domain + ": " + e.Msg
}

func permanent(domain, enhanced, msg string) *Error {
	return &Error{Domain: domain, Permanent: true, Enhanced: enhanced, Msg: msg}
}

// transient errors are all "4.4.3": the directory server (DNS) failed.
func transient(domain, msg string) *Error {
	return &Error{Domain: domain, Enhanced: "4.4.3", Msg: msg}
}
