package users

import (
	"strings"
	"testing"

	"facteur/internal/maildir"
)

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		file,
		"alice\n",
		"bob@example.test robert # c\n",
		"@other.test catchall\n",
		"alice ../x\n",
		"a@b@c\n",
		"\x00 \r\n#\t@",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		m, err := Parse(strings.NewReader(text), "fuzz", domains)
		if err != nil {
			return
		}
		if m.Len() > strings.Count(text, "\n")+1 {
			t.Errorf("%d entries from %q", m.Len(), text)
		}
		// Look up every word of the input, whole and split at '@', at every
		// domain: whatever matches must name a safe mailbox.
		words := strings.FieldsFunc(text, func(r rune) bool { return r <= ' ' || r == '#' })
		for _, w := range words {
			local, _, _ := strings.Cut(w, "@")
			for _, d := range []string{"example.test", "other.test", "evil.test"} {
				for _, l := range []string{w, local} {
					if mb, ok := m.Lookup(l, d); ok && !maildir.ValidMailbox(mb) {
						t.Errorf("Lookup(%q, %q) = unsafe mailbox %q", l, d, mb)
					}
				}
			}
		}
	})
}

func FuzzLookup(f *testing.F) {
	m, err := Parse(strings.NewReader(file), "users", domains)
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range [][2]string{
		{"alice", "example.test"},
		{"nobody", "other.test"},
		{"../x", "other.test"},
		{"user%evil.test", "other.test"},
		{"user@evil.test", "other.test"},
		{`"quoted"`, "other.test"},
		{"a\x00b", "other.test"},
		{"alice", "evil.test"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, local, domain string) {
		mb, ok := m.Lookup(local, domain)
		if !ok {
			return
		}
		if !maildir.ValidMailbox(mb) {
			t.Errorf("Lookup(%q, %q) = unsafe mailbox %q", local, domain, mb)
		}
		if !m.IsLocalDomain(domain) {
			t.Errorf("Lookup(%q, %q) found %q at a domain that is not local", local, domain, mb)
		}
		if strings.ContainsAny(local, "@%/\\\"!\x00 ") {
			t.Errorf("Lookup(%q, %q) accepted a hostile local part", local, domain)
		}
	})
}
