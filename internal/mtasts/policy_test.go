package mtasts

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	p, err := Parse("version: STSv1\r\nmode: enforce\r\nmx: mail.example.com.\r\nmx: *.Example.NET\r\nmax_age: 604800\r\nextension: ignored\r\n")
	if err != nil {
		t.Fatal(err)
	}
	if p.Mode != Enforce || p.MaxAge != 7*24*time.Hour || !slices.Equal(p.MX, []string{"mail.example.com", "*.example.net"}) {
		t.Errorf("got %+v", p)
	}
	if want := []string{"version: STSv1", "mode: enforce", "mx: mail.example.com.", "mx: *.Example.NET", "max_age: 604800", "extension: ignored"}; !slices.Equal(p.Lines(), want) {
		t.Errorf("Lines() = %q, want %q", p.Lines(), want)
	}
	p, err = Parse("version: STSv1\nmode: none\nmax_age: 9999999999\n")
	if err != nil || p.Mode != None || p.MaxAge != MaxMaxAge {
		t.Errorf("mode none, a long max_age: %+v, %v; want it capped at %v", p, err, MaxMaxAge)
	}
	for _, bad := range []string{
		"mode: enforce\nmx: a.test\nmax_age: 1\n",                           // no version
		"version: STSv2\nmode: enforce\nmx: a.test\nmax_age: 1\n",           // other version
		"version: STSv1\nmode: strict\nmx: a.test\nmax_age: 1\n",            // unknown mode
		"version: STSv1\nmode: enforce\nmax_age: 1\n",                       // no mx
		"version: STSv1\nmode: enforce\nmx: a.test\n",                       // no max_age
		"version: STSv1\nmode: enforce\nmx: a.test\nmax_age: -1\n",          // not a number
		"version: STSv1\nmode: enforce\nmx: a.test\nmax_age: 12345678901\n", // 11 digits
		"version: STSv1\nmode: enforce\nmode: testing\nmx: a.test\nmax_age: 1\n",
		"version: STSv1\nmode: enforce\nmx: a.*.test\nmax_age: 1\n",
		"version: STSv1\nmode: enforce\nmx: *.\nmax_age: 1\n",
		"version: STSv1\nmode enforce\nmx: a.test\nmax_age: 1\n",
		"<html>not found</html>",
	} {
		if p, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) = %+v, want an error", bad, p)
		}
	}
}

func TestMatches(t *testing.T) {
	p := &Policy{MX: []string{"mail.example.com", "*.example.net"}}
	for host, want := range map[string]bool{
		"mail.example.com":   true,
		"MAIL.example.com.":  true,
		"mx1.example.net":    true,
		"mx1.Example.NET.":   true,
		"a.b.example.net":    false, // a wildcard stands for one label
		"example.net":        false,
		".example.net":       false,
		"mail.example.com.x": false,
		"xmail.example.com":  false,
	} {
		if got := p.Matches(host); got != want {
			t.Errorf("Matches(%q) = %v, want %v", host, got, want)
		}
	}
}

func TestParseRecord(t *testing.T) {
	for _, c := range []struct {
		txts []string
		id   string
	}{
		{[]string{"v=STSv1; id=20261202T1;"}, "20261202T1"},
		{[]string{"v=STSv1;id=abc"}, "abc"},
		{[]string{"v=spf1 -all", "v=STSv1; id=abc; ext=1"}, "abc"},
		{[]string{"v=STSv1; id=abc;", "v=STSv1; id=def;"}, ""}, // two: none
		{[]string{"v=STSv1; id=not-alnum;"}, ""},
		{[]string{"v=STSv1; id=" + strings.Repeat("a", 33)}, ""},
		{[]string{"v=STSv1;"}, ""},
		{[]string{"id=abc; v=STSv1;"}, ""},
		{nil, ""},
	} {
		id, ok := ParseRecord(c.txts)
		if id != c.id || ok != (c.id != "") {
			t.Errorf("ParseRecord(%q) = %q, %v; want %q", c.txts, id, ok, c.id)
		}
	}
}
