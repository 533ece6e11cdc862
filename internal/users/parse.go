package users

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"

	"facteur/internal/maildir"
)

// Load reads the users file at path. domains are the local domains; an entry
// for any other domain is an error. A missing file is an error too: whether
// that is fatal is the caller's decision.
func Load(path string, domains []string) (*Map, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err // names the file already
	}
	defer f.Close()
	return Parse(f, path, domains)
}

// Parse reads a users file from r; name is used in error messages, which
// give the line: "/etc/facteur/users:3: mailbox "../x" is not a plain name".
// The caller says what the file is for (users_file).
//
// One entry per line, fields separated by spaces or tabs, '#' starts a
// comment:
//
//	alice                     alice at every local domain, mailbox alice
//	alice mbx                 the same, mailbox mbx
//	bob@example.test robert   that address only (mailbox defaults to bob)
//	@example.test catchall    every other address of example.test
//
// Addresses are compared without regard to case.
func Parse(r io.Reader, name string, domains []string) (*Map, error) {
	p := &parser{
		m: &Map{
			domains:  make(map[string]bool, len(domains)),
			addrs:    make(map[address]string),
			locals:   make(map[string]string),
			catchall: make(map[string]string),
		},
		lines: make(map[string]int),
	}
	for _, d := range domains {
		if d != "" {
			p.m.domains[strings.ToLower(d)] = true
		}
	}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		if err := p.line(sc.Text(), n); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, n, err)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return p.m, nil
}

type parser struct {
	m     *Map
	lines map[string]int // entry key as written in lower case -> its line, to report duplicates
}

func (p *parser) line(text string, n int) error {
	if i := strings.IndexByte(text, '#'); i >= 0 {
		text = text[:i]
	}
	// '\r' counts as a separator so that a file saved with CRLF reads the same.
	fields := strings.FieldsFunc(text, func(r rune) bool { return r == ' ' || r == '\t' || r == '\r' })
	switch len(fields) {
	case 0:
		return nil
	case 1, 2:
	default:
		return fmt.Errorf("%d fields, want an address and at most a mailbox", len(fields))
	}

	key := fields[0]
	local, domain, hasDomain := strings.Cut(key, "@")
	if local != "" && !validLocal(local) {
		return fmt.Errorf("local part %q is not a plain name", local)
	}
	if hasDomain {
		if domain == "" {
			return fmt.Errorf("address %q has no domain", key)
		}
		if !p.m.domains[strings.ToLower(domain)] {
			return fmt.Errorf("domain %q is not a local domain", domain)
		}
	}
	mailbox := local
	if len(fields) == 2 {
		mailbox = fields[1]
	} else if local == "" {
		return fmt.Errorf("catch-all %q needs a mailbox", key)
	}
	if !maildir.ValidMailbox(mailbox) {
		return fmt.Errorf("mailbox %q is not a plain name", mailbox)
	}

	lkey := strings.ToLower(key)
	if first, dup := p.lines[lkey]; dup {
		return fmt.Errorf("duplicate entry for %q (first on line %d)", key, first)
	}
	p.lines[lkey] = n
	local, domain = strings.ToLower(local), strings.ToLower(domain)
	switch {
	case !hasDomain:
		p.m.locals[local] = mailbox
	case local == "":
		p.m.catchall[domain] = mailbox
	default:
		p.m.addrs[address{local, domain}] = mailbox
	}
	return nil
}
