package mtasts

import (
	"strings"
	"testing"
)

// FuzzParse: any policy file either fails to parse or gives a policy within
// the RFC's bounds, whose patterns match hosts without panicking.
func FuzzParse(f *testing.F) {
	f.Add("version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmax_age: 604800\r\n")
	f.Add("version: STSv1\nmode: none\nmax_age: 0\n")
	f.Add("version: STSv1\nmode: testing\nmx: *.\nmax_age: 99999999999\n")
	f.Fuzz(func(t *testing.T, text string) {
		p, err := Parse(text)
		if err != nil {
			return
		}
		if p.Mode != Enforce && p.Mode != Testing && p.Mode != None {
			t.Fatalf("mode %q", p.Mode)
		}
		if p.MaxAge < 0 || p.MaxAge > MaxMaxAge {
			t.Fatalf("max_age %v", p.MaxAge)
		}
		if p.Mode != None && len(p.MX) == 0 {
			t.Fatal("no mx")
		}
		for _, pat := range p.MX {
			if pat != strings.ToLower(pat) {
				t.Fatalf("pattern %q not in lower case", pat)
			}
			p.Matches(strings.TrimPrefix(pat, "*.")) // no panic
			p.Matches("x." + strings.TrimPrefix(pat, "*."))
		}
		p.Lines()
	})
}

// FuzzParseRecord: an id comes back only when valid.
func FuzzParseRecord(f *testing.F) {
	f.Add("v=STSv1; id=20261202T1;")
	f.Add("v=STSv1;id=")
	f.Fuzz(func(t *testing.T, txt string) {
		id, ok := ParseRecord([]string{txt})
		if ok != validID(id) || (ok && !strings.Contains(txt, "id="+id)) {
			t.Fatalf("%q: id %q, %v", txt, id, ok)
		}
	})
}
