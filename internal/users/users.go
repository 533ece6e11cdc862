// Package users is the local users map: which addresses of the local domains
// exist, and the Maildir mailbox each one is delivered to.
package users

import (
	"slices"
	"strings"

	"facteur/internal/maildir"
)

// Map is the parsed users file. It is never modified once built, so any
// number of goroutines may read it; a reload builds a new Map.
type Map struct {
	domains  map[string]bool
	addrs    map[address]string // "bob@example.test robert"
	locals   map[string]string  // "alice mbx": alice at every local domain
	catchall map[string]string  // "@example.test catchall", by domain
}

// address is an exact entry's key. A struct rather than "local@domain" so that
// no local part can ever be read as part of the domain or the reverse.
type address struct{ local, domain string }

// IsLocalDomain reports whether mail for domain is delivered here.
func (m *Map) IsLocalDomain(domain string) bool {
	return len(domain) <= 255 && m.domains[strings.ToLower(domain)]
}

// Lookup returns the mailbox for local@domain, as received in RCPT TO: an
// exact address entry first, then a bare local part entry, then the domain's
// catch-all. It reports false for a domain that is not local and for any local
// part outside the plain set the file itself accepts, so routing tricks
// ("user%other", quoted strings, an '@' inside the local part) never reach a
// mailbox, not even a catch-all. The mailbox always comes from the file.
func (m *Map) Lookup(local, domain string) (mailbox string, ok bool) {
	if !validLocal(local) || !m.IsLocalDomain(domain) {
		return "", false
	}
	local, domain = strings.ToLower(local), strings.ToLower(domain)
	if mb, ok := m.addrs[address{local, domain}]; ok {
		return mb, true
	}
	if mb, ok := m.locals[local]; ok {
		return mb, true
	}
	mb, ok := m.catchall[domain]
	return mb, ok
}

// Has tells whether local@domain has an entry of its own, an exact
// address or a bare local part, so not by the domain's catch-all: a
// recipient "alice+news" is alice's with the tag "news" unless the map
// has "alice+news" itself.
func (m *Map) Has(local, domain string) bool {
	if !validLocal(local) || !m.IsLocalDomain(domain) {
		return false
	}
	local, domain = strings.ToLower(local), strings.ToLower(domain)
	_, exact := m.addrs[address{local, domain}]
	_, bare := m.locals[local]
	return exact || bare
}

// Postmaster is the local part that RFC 5321 4.5.1 requires every mail
// domain to accept.
const Postmaster = "postmaster"

// WithoutPostmaster lists the local domains, sorted, where postmaster has
// no mailbox.
func (m *Map) WithoutPostmaster() []string {
	var missing []string
	for _, d := range m.Domains() {
		if _, ok := m.Lookup(Postmaster, d); !ok {
			missing = append(missing, d)
		}
	}
	return missing
}

// WithoutMailbox lists, in their order, the names that no entry delivers
// to: a submission account must be a mailbox, as the addresses it may send
// from are that mailbox's.
func (m *Map) WithoutMailbox(names []string) []string {
	has := map[string]bool{}
	for _, entries := range []map[string]string{m.locals, m.catchall} {
		for _, mb := range entries {
			has[mb] = true
		}
	}
	for _, mb := range m.addrs {
		has[mb] = true
	}
	var missing []string
	for _, n := range names {
		if !has[n] {
			missing = append(missing, n)
		}
	}
	return missing
}

// Len returns the number of entries in the file.
func (m *Map) Len() int {
	return len(m.addrs) + len(m.locals) + len(m.catchall)
}

// Domains returns the local domains, lower case and sorted.
func (m *Map) Domains() []string {
	ds := make([]string, 0, len(m.domains))
	for d := range m.domains {
		ds = append(ds, d)
	}
	slices.Sort(ds)
	return ds
}

// validLocal reports whether s is a local part the map can hold: 1 to 64
// bytes (RFC 5321's limit) of [A-Za-z0-9._+-], dots only between other
// characters (a dot-atom). That is narrower than RFC 5322 allows, on purpose:
// it leaves out every character used for source routing, quoting or escaping.
func validLocal(s string) bool {
	// A mailbox name is the same characters without a leading dot.
	return maildir.ValidMailbox(s) && s[len(s)-1] != '.' && !strings.Contains(s, "..")
}
