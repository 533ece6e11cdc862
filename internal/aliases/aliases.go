// Package aliases is the aliases file: addresses of the local domains that
// stand for others (local users, other aliases, addresses elsewhere), and
// domains that stand for other domains. It is read whole, checked for
// loops when read, and never changed after: a reload builds a new Table.
package aliases

import (
	"fmt"
	"strings"
)

// MaxDepth is how deep aliases may nest: an alias whose targets are
// aliases is one level, and so on. Past it the file is refused.
const MaxDepth = 10

// Table is the parsed aliases file.
type Table struct {
	domains map[string]bool
	addrs   map[string]*entry // "sales@example.test: ...", by the lower-case address
	locals  map[string]*entry // "sales: ...", at every local domain
	domain  map[string]*entry // "@old.example: @example.org", by the old domain
}

// entry is one line: its targets as written ("alice", "bob@example.net",
// "@example.org"), and where it is, for the errors of the loop check.
type entry struct {
	key     string
	targets []string
	line    int
}

// Users is what expansion asks of the users map; *users.Map is one.
type Users interface {
	// Lookup is the mailbox of an address, catch-all included.
	Lookup(local, domain string) (mailbox string, ok bool)
	// Has tells whether an address has an entry of its own, catch-all
	// excluded: it decides whether "a+b" is a user or a's tag b.
	Has(local, domain string) bool
	IsLocalDomain(domain string) bool
}

// Dest is where one expanded address goes.
type Dest struct {
	Addr    string // the address reached, lower case
	Mailbox string // the local mailbox; "" for an address at another domain
}

// Local reports whether the destination is a mailbox here.
func (d Dest) Local() bool { return d.Mailbox != "" }

// Len is the number of entries.
func (t *Table) Len() int {
	if t == nil {
		return 0
	}
	return len(t.addrs) + len(t.locals) + len(t.domain)
}

// Expand says where mail for local@domain, an address of a local domain,
// goes: the users and addresses elsewhere that its aliases lead to, each
// once, or the address's own mailbox. A local part "base<delim>tag" is
// base's, unless an alias or a user has the whole local part; delim ""
// turns tags off. ok is false when nothing takes the address: no user,
// or an alias none of whose targets lead anywhere.
//
// A nil Table has no aliases.
func (t *Table) Expand(u Users, delim, local, domain string) (dests []Dest, ok bool) {
	local, domain = strings.ToLower(local), strings.ToLower(domain)
	if i := strings.Index(local, delim); delim != "" && i > 0 && !t.has(local, domain) && !u.Has(local, domain) {
		local = local[:i]
	}
	x := expansion{t: t, u: u, seen: map[string]bool{}}
	// A loop was refused when the file was read; one that comes back
	// anyway (it cannot) ends here without a destination.
	if err := x.walk(local, domain, 0, nil); err != nil {
		return nil, false
	}
	return x.dests, len(x.dests) > 0
}

// has tells whether the table has an alias for exactly local@domain.
func (t *Table) has(local, domain string) bool {
	_, ok := t.lookup(local, domain)
	return ok
}

// lookup is the entry that local@domain (lower case) is an alias by: its
// own, else its local part's at every domain, else its domain's.
func (t *Table) lookup(local, domain string) (*entry, bool) {
	if t == nil || !t.domains[domain] {
		return nil, false
	}
	if e, ok := t.addrs[local+"@"+domain]; ok {
		return e, true
	}
	if e, ok := t.locals[local]; ok {
		return e, true
	}
	e, ok := t.domain[domain]
	return e, ok
}

// expansion is one walk through the aliases from one address.
type expansion struct {
	t     *Table
	u     Users // nil while the file is checked: only aliases are followed
	seen  map[string]bool
	dests []Dest
}

// walk follows local@domain. path holds the aliases that led here, to
// see a loop; depth counts them.
func (x *expansion) walk(local, domain string, depth int, path []string) error {
	addr := local + "@" + domain
	e, alias := x.t.lookup(local, domain)
	// "alice: alice, alice@elsewhere.example" keeps a copy: an alias
	// that names itself names the user.
	if alias && len(path) > 0 && path[len(path)-1] == addr {
		alias = false
	}
	if !alias {
		x.reach(local, domain, addr)
		return nil
	}
	for i, p := range path {
		if p == addr {
			return &lineError{e.line, fmt.Errorf("alias loop: %s", strings.Join(append(path[i:], addr), " -> "))}
		}
	}
	if depth >= MaxDepth {
		return &lineError{e.line, fmt.Errorf("aliases nested more than %d levels: %s", MaxDepth,
			strings.Join(append(path, addr), " -> "))}
	}
	path = append(path, addr)
	for _, target := range e.targets {
		tl, td := splitTarget(target, local, domain)
		if err := x.walk(tl, td, depth+1, path); err != nil {
			return err
		}
	}
	return nil
}

// lineError is a mistake of the file found at the line of an entry.
type lineError struct {
	line int
	err  error
}

func (e *lineError) Error() string { return fmt.Sprintf("%d: %v", e.line, e.err) }

// reach adds the destination of an address no alias takes, once.
func (x *expansion) reach(local, domain, addr string) {
	if x.u == nil {
		return
	}
	d := Dest{Addr: addr}
	if x.u.IsLocalDomain(domain) {
		mb, ok := x.u.Lookup(local, domain)
		if !ok {
			return // a target that is no one: the others still count
		}
		d.Mailbox = mb
	}
	key := "addr " + addr
	if d.Local() {
		key = "mailbox " + d.Mailbox
	}
	if !x.seen[key] {
		x.seen[key] = true
		x.dests = append(x.dests, d)
	}
}

// splitTarget reads a target of an alias of local@domain: "alice" is at
// domain, "@example.org" is the same local part at that domain.
func splitTarget(target, local, domain string) (string, string) {
	l, d, full := strings.Cut(target, "@")
	switch {
	case !full:
		return l, domain
	case l == "":
		return local, d
	}
	return l, d
}
