package aliases

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"facteur/internal/users"
)

var domains = []string{"example.test", "old.example", "other.test"}

func mustUsers(t *testing.T, text string) *users.Map {
	t.Helper()
	u, err := users.Parse(strings.NewReader(text), "users", domains)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func mustParse(t *testing.T, text string) *Table {
	t.Helper()
	a, err := Parse(strings.NewReader(text), "aliases", domains)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// show writes destinations as "mailbox" or "addr" for the comparisons.
func show(ds []Dest) string {
	var out []string
	for _, d := range ds {
		if d.Local() {
			out = append(out, d.Mailbox)
		} else {
			out = append(out, d.Addr)
		}
	}
	return strings.Join(out, " ")
}

func TestExpand(t *testing.T) {
	u := mustUsers(t, "alice\nbob\ncarol@other.test carol\ndave\nnews+letter\n@other.test catchall\n")
	a := mustParse(t, `# aliases
sales: alice, bob, Partner@Example.NET
team@example.test: sales, carol@other.test, alice   # alice twice: once
staff: team@example.test
dave: dave, dave@elsewhere.example
nobody: ghost
@old.example: @example.test
`)
	for _, c := range []struct {
		local, domain, want string
		ok                  bool
	}{
		{"sales", "example.test", "alice bob partner@example.net", true},
		{"SALES", "Example.Test", "alice bob partner@example.net", true},
		{"sales", "other.test", "alice bob partner@example.net", true},
		{"team", "example.test", "alice bob partner@example.net carol", true},
		{"team", "other.test", "catchall", true}, // no alias there: the catch-all
		{"staff", "example.test", "alice bob partner@example.net carol", true},
		{"dave", "example.test", "dave dave@elsewhere.example", true},
		{"sales+team", "example.test", "alice bob partner@example.net", true},
		{"x", "other.test", "catchall", true},
		{"bob", "example.test", "bob", true},
		{"bob+news", "example.test", "bob", true},
		{"sales+q4", "example.test", "alice bob partner@example.net", true},
		{"news+letter", "example.test", "news+letter", true}, // a user of its own
		{"bob", "old.example", "bob", true},
		{"sales", "old.example", "alice bob partner@example.net", true},
		{"nobody", "example.test", "", false},
		{"ghost", "example.test", "", false},
		{"ghost", "old.example", "", false},
	} {
		ds, ok := a.Expand(u, "+", c.local, c.domain)
		if got := show(ds); ok != c.ok || got != c.want {
			t.Errorf("%s@%s: got %q %v, want %q %v", c.local, c.domain, got, ok, c.want, c.ok)
		}
	}
	// No delimiter, no tags.
	if ds, ok := a.Expand(u, "", "bob+news", "example.test"); ok {
		t.Errorf("bob+news without a delimiter: %q", show(ds))
	}
	if ds, ok := a.Expand(u, "-", "bob-news", "example.test"); !ok || show(ds) != "bob" {
		t.Errorf("bob-news with delimiter -: %q %v", show(ds), ok)
	}
	// No file, no aliases.
	var none *Table
	if ds, ok := none.Expand(u, "+", "alice+x", "example.test"); !ok || show(ds) != "alice" {
		t.Errorf("nil table: %q %v", show(ds), ok)
	}
}

func TestNestingDepth(t *testing.T) {
	var b strings.Builder
	for i := range MaxDepth {
		b.WriteString("a" + string(rune('a'+i)) + ": a" + string(rune('a'+i+1)) + "\n")
	}
	// aa -> ab -> ... -> ak: MaxDepth levels, the last a user.
	a := mustParse(t, b.String())
	u := mustUsers(t, "a"+string(rune('a'+MaxDepth))+"\n")
	if ds, ok := a.Expand(u, "+", "aa", "example.test"); !ok || len(ds) != 1 {
		t.Fatalf("%d levels: %v %v", MaxDepth, ds, ok)
	}
	b.WriteString("a" + string(rune('a'+MaxDepth)) + ": zz\n")
	_, err := Parse(strings.NewReader(b.String()), "aliases", domains)
	if err == nil || !strings.Contains(err.Error(), "nested more than 10 levels") {
		t.Fatalf("%d levels: %v", MaxDepth+1, err)
	}
}

func TestErrors(t *testing.T) {
	for _, c := range []struct{ text, want string }{
		{"a: b\nb: c\nc: a\n", "aliases:1: alias loop: a@example.test -> b@example.test -> c@example.test -> a@example.test"},
		{"x: y\n\ny@other.test: x@other.test\n", "aliases:1: alias loop: x@other.test -> y@other.test -> x@other.test"},
		{"@old.example: @other.test\n@other.test: @old.example\n", "aliases:1: alias loop"},
		{"x@example.test: y@old.example\n@old.example: @example.test\ny@example.test: x\n", "aliases:1: alias loop: x@example.test -> y@old.example -> y@example.test -> x@example.test"},
		{"sales\n", "aliases:1: want \"alias: target, target...\""},
		{"sales:\n", "aliases:1: alias \"sales\" has no target"},
		{"a: b\nA: c\n", "aliases:2: duplicate alias \"a\" (first on line 1)"},
		{"x@elsewhere.example: a\n", "aliases:1: \"x@elsewhere.example\": domain \"elsewhere.example\" is not a local domain"},
		{"@old.example: alice\n", "aliases:1: alias \"@old.example\": target \"alice\" is not a domain"},
		{"@old.example: @a.test, @b.test\n", "aliases:1: domain alias \"@old.example\" takes one target"},
		{"a: b@\n", "aliases:1: alias \"a\": target \"b@\" is not an address"},
		{"a: \"q\"@example.net\n", "is not an address"},
		{"a b: c\n", "aliases:1: alias \"a b\" is not an address"},
	} {
		_, err := Parse(strings.NewReader(c.text), "aliases", domains)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: got %v, want %q", c.text, err, c.want)
		}
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(filepath.Join(dir, "missing"), domains); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
	p := filepath.Join(dir, "aliases")
	if err := os.WriteFile(p, []byte("sales: alice\r\n@old.example: @example.test\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := Load(p, domains)
	if err != nil || a.Len() != 2 {
		t.Fatalf("CRLF file: %v %v", a, err)
	}
	ds, _ := a.Expand(mustUsers(t, "alice\n"), "+", "sales", "old.example")
	if !slices.Equal([]Dest{{Addr: "alice@example.test", Mailbox: "alice"}}, ds) {
		t.Errorf("got %v", ds)
	}
}
