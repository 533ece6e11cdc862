package aliases

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
)

// Load reads the aliases file at path; domains are the local domains. A
// missing file is an error that wraps fs.ErrNotExist: whether it means
// "no aliases" is the caller's decision, as for the users file.
func Load(path string, domains []string) (*Table, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err // names the file already
	}
	defer f.Close()
	return Parse(f, path, domains)
}

// Parse reads an aliases file from r; name is used in error messages,
// which give the line: "/etc/facteur/aliases:3: alias loop: ...".
//
// One alias per line, '#' starts a comment, targets separated by commas
// or spaces:
//
//	sales: alice, bob, partner@example.net   sales at every local domain
//	info@example.test: sales                 that address only
//	@old.example: @example.org               every address of old.example
//
// A target without a domain is at the domain of the address expanded.
// Keys are addresses of the local domains; aliases may name aliases, up
// to MaxDepth levels, and a loop is an error. Case does not matter.
func Parse(r io.Reader, name string, domains []string) (*Table, error) {
	t := &Table{domains: map[string]bool{}, addrs: map[string]*entry{}, locals: map[string]*entry{}, domain: map[string]*entry{}}
	for _, d := range domains {
		if d != "" {
			t.domains[strings.ToLower(d)] = true
		}
	}
	lines := map[string]int{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		e, err := t.line(sc.Text(), n)
		if err == nil && e != nil {
			if first, dup := lines[e.key]; dup {
				err = fmt.Errorf("duplicate alias %q (first on line %d)", e.key, first)
			}
			lines[e.key] = n
		}
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, n, err)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if err := t.checkLoops(); err != nil {
		return nil, fmt.Errorf("%s:%w", name, err)
	}
	return t, nil
}

// line parses one line into the table, and returns its entry (nil for a
// blank line).
func (t *Table) line(text string, n int) (*entry, error) {
	if i := strings.IndexByte(text, '#'); i >= 0 {
		text = text[:i]
	}
	if strings.TrimSpace(text) == "" {
		return nil, nil
	}
	key, rest, ok := strings.Cut(text, ":")
	if !ok {
		return nil, errors.New(`want "alias: target, target..."`)
	}
	key = strings.ToLower(strings.TrimSpace(key))
	targets := strings.FieldsFunc(rest, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\r' })
	if len(targets) == 0 {
		return nil, fmt.Errorf("alias %q has no target", key)
	}
	e := &entry{key: key, line: n}
	local, domain, full := strings.Cut(key, "@")
	if full && !t.domains[domain] {
		return nil, fmt.Errorf("%q: domain %q is not a local domain", key, domain)
	}
	for _, target := range targets {
		if err := checkTarget(target, local == ""); err != nil {
			return nil, fmt.Errorf("alias %q: %w", key, err)
		}
		e.targets = append(e.targets, strings.ToLower(target))
	}
	switch {
	case local == "" && full:
		if len(targets) != 1 || targets[0][0] != '@' {
			return nil, fmt.Errorf("domain alias %q takes one target, a domain such as @example.org", key)
		}
		t.domain[domain] = e
	case !validLocal(local):
		return nil, fmt.Errorf("alias %q is not an address", key)
	case full:
		t.addrs[key] = e
	default:
		t.locals[local] = e
	}
	return e, nil
}

// checkTarget tells what is wrong with a target, if anything: an address,
// a local part, or, for a domain alias, "@domain".
func checkTarget(target string, domainAlias bool) error {
	local, domain, full := strings.Cut(target, "@")
	switch {
	case domainAlias && local == "" && validDomain(domain):
		return nil
	case domainAlias:
		return fmt.Errorf("target %q is not a domain such as @example.org", target)
	case !validLocal(local), full && !validDomain(domain):
		return fmt.Errorf("target %q is not an address", target)
	}
	return nil
}

// checkLoops walks every alias at every local domain, and every domain
// alias, as mail would, and reports the first loop or nesting too deep.
func (t *Table) checkLoops() error {
	// A local part no alias has: it follows the domain aliases only.
	const nobody = "\x00"
	x := expansion{t: t}
	// Sorted, so that the same file always reports the same loop.
	for _, d := range slices.Sorted(maps.Keys(t.domains)) {
		if err := x.walk(nobody, d, 0, nil); err != nil {
			return err
		}
		for _, l := range slices.Sorted(maps.Keys(t.locals)) {
			if err := x.walk(l, d, 0, nil); err != nil {
				return err
			}
		}
	}
	for _, a := range slices.Sorted(maps.Keys(t.addrs)) {
		l, d, _ := strings.Cut(a, "@")
		if err := x.walk(l, d, 0, nil); err != nil {
			return err
		}
	}
	return nil
}

// validLocal reports whether s is a dot-atom local part (RFC 5322 3.2.3)
// of at most 64 octets: what an alias or its target may be; quoted local
// parts are not.
func validLocal(s string) bool {
	if s == "" || len(s) > 64 || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte(".!#$%&'*+/=?^_`{|}~-", c) >= 0) {
			return false
		}
	}
	return true
}

// validDomain reports whether s looks like a domain name: labels of
// letters, digits and hyphens.
func validDomain(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if l == "" || len(l) > 63 {
			return false
		}
		for i := range len(l) {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}
