package aliases

import (
	"strings"
	"testing"
)

// FuzzParse: any file either fails to parse or gives a table whose every
// expansion ends, each destination once, within MaxDepth levels.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"sales: alice, bob, partner@example.net\n",
		"@old.example: @example.test\nx: y\n",
		"a: b\nb: c\nc: a\n",
		"a: a, a@elsewhere.example\n",
		"a:\n: b\n@: @\n\x00: \r\n",
	} {
		f.Add(s)
	}
	u := fakeUsers{}
	f.Fuzz(func(t *testing.T, text string) {
		a, err := Parse(strings.NewReader(text), "fuzz", domains)
		if err != nil {
			return
		}
		words := strings.FieldsFunc(text, func(r rune) bool { return r <= ' ' || r == ',' || r == ':' || r == '#' })
		for _, w := range words {
			local, _, _ := strings.Cut(w, "@")
			for _, d := range domains {
				ds, ok := a.Expand(u, "+", local, d)
				seen := map[Dest]bool{}
				for _, x := range ds {
					if seen[x] {
						t.Errorf("%s@%s: %v twice", local, d, x)
					}
					seen[x] = true
				}
				if ok != (len(ds) > 0) {
					t.Errorf("%s@%s: ok %v with %v", local, d, ok, ds)
				}
			}
		}
	})
}

// fakeUsers has a mailbox for every plain local part of a local domain.
type fakeUsers struct{}

func (fakeUsers) Lookup(local, domain string) (string, bool) {
	return local, validLocal(local) && fakeUsers{}.IsLocalDomain(domain)
}
func (fakeUsers) Has(local, domain string) bool { return false }
func (fakeUsers) IsLocalDomain(domain string) bool {
	for _, d := range domains {
		if d == domain {
			return true
		}
	}
	return false
}
