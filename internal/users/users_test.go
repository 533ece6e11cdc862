package users

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var domains = []string{"example.test", "Other.TEST"}

const file = `# local users
alice                   # alice at every local domain
carol   c.mbx
bob@example.test robert
dave@other.test
@other.test     catchall	# trailing comment
Eve@Example.Test eve2
eve                     eve1

`

func mustParse(t *testing.T, text string) *Map {
	t.Helper()
	m, err := Parse(strings.NewReader(text), "users", domains)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestLookup(t *testing.T) {
	m := mustParse(t, file)
	for _, c := range []struct {
		local, domain, mailbox string
	}{
		{"alice", "example.test", "alice"},
		{"alice", "other.test", "alice"},
		{"ALICE", "Example.TEST", "alice"},
		{"carol", "example.test", "c.mbx"},
		{"bob", "example.test", "robert"},
		{"BOB", "EXAMPLE.test", "robert"},
		{"bob", "other.test", "catchall"}, // bob's entry is for example.test only
		{"dave", "other.test", "dave"},    // mailbox defaults to the local part
		{"nobody", "other.test", "catchall"},
		{"eve", "example.test", "eve2"}, // exact entry before bare local part
		{"eve", "other.test", "eve1"},   // bare local part before catch-all
		{"bob", "example.test", "robert"},
		{"nobody", "example.test", ""}, // no catch-all there
		{"dave", "example.test", ""},
		{"alice", "elsewhere.test", ""}, // not a local domain
		{"alice", "", ""},
	} {
		mb, ok := m.Lookup(c.local, c.domain)
		if mb != c.mailbox || ok != (c.mailbox != "") {
			t.Errorf("Lookup(%q, %q) = %q, %v; want %q", c.local, c.domain, mb, ok, c.mailbox)
		}
	}
	if m.Len() != 7 {
		t.Errorf("Len() = %d, want 7", m.Len())
	}
	if got, want := m.Domains(), []string{"example.test", "other.test"}; !slices.Equal(got, want) {
		t.Errorf("Domains() = %v, want %v", got, want)
	}
	if !m.IsLocalDomain("OTHER.test") || m.IsLocalDomain("evil.test") {
		t.Error("IsLocalDomain is wrong")
	}
}

// Hostile local parts get no mailbox, even from a catch-all.
func TestLookupHostile(t *testing.T) {
	m := mustParse(t, "alice\n@example.test catchall\n")
	for _, local := range []string{
		"../x", "a/b", "..", ".alice", "alice.", "a..b", "user%evil.test", `"quoted"`, `"alice"`, "alice@evil.test",
		"a\x00b", "alice\x00", "a\nb", "a b", "a\\b", "", strings.Repeat("a", 65),
		strings.Repeat("alice", 100000), "évé",
	} {
		if mb, ok := m.Lookup(local, "example.test"); ok {
			t.Errorf("Lookup(%q) = %q, want no mailbox", local, mb)
		}
	}
	if _, ok := m.Lookup("alice", strings.Repeat("a", 1000000)); ok {
		t.Error("huge domain found")
	}
}

func TestParseErrors(t *testing.T) {
	for _, c := range []struct {
		text, want string
	}{
		{"alice\n\n../x", `users:3: local part "../x" is not a plain name`},
		{"a..b", `local part "a..b" is not a plain name`},
		{".a", `local part ".a" is not a plain name`},
		{"alice ../x", `users:1: mailbox "../x" is not a plain name`},
		{"alice a/b", `mailbox "a/b" is not a plain name`},
		{"alice .hidden", `mailbox ".hidden" is not a plain name`},
		{"Ünïcode", `local part "Ünïcode" is not a plain name`},
		{"bob@evil.test", `users:1: domain "evil.test" is not a local domain`},
		{"@evil.test x", `domain "evil.test" is not a local domain`},
		{"bob@", `address "bob@" has no domain`},
		{"@ x", `address "@" has no domain`},
		{"a@b@example.test", `domain "b@example.test" is not a local domain`},
		{"@example.test", `catch-all "@example.test" needs a mailbox`},
		{"alice a b", `users:1: 3 fields`},
		{"alice\nALICE x", `users:2: duplicate entry for "ALICE" (first on line 1)`},
		{"bob@example.test\nBob@EXAMPLE.test", `duplicate entry`},
		{"@example.test a\n@Example.Test b", `duplicate entry`},
		{"x" + strings.Repeat("a", 70000), `users: bufio.Scanner: token too long`},
	} {
		_, err := Parse(strings.NewReader(c.text), "users", domains)
		// The file name and line, once: the caller adds what the file is.
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Count(err.Error(), "users") != 1 {
			t.Errorf("Parse(%.40q): error %v, want %q", c.text, err, c.want)
		}
	}
}

func TestParseAccepts(t *testing.T) {
	for _, text := range []string{
		"",
		"# only a comment\n\n   \t\n",
		"alice\r\nbob\r\n",              // CRLF file
		"alice\tmbx\n",                  // tab separator
		"alice#comment\n",               // comment right after the key
		"alice\nalice@example.test x\n", // exact and bare entries are distinct keys
	} {
		if _, err := Parse(strings.NewReader(text), "users", domains); err != nil {
			t.Errorf("Parse(%q): %v", text, err)
		}
	}
}

func TestLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users")
	if _, err := Load(path, domains); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: error %v, want ErrNotExist", err)
	}
	if err := os.WriteFile(path, []byte("alice\nbob ../x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path, domains)
	if want := path + `:2: mailbox "../x" is not a plain name`; err == nil || err.Error() != want {
		t.Errorf("error %v, want %q", err, want)
	}
	if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	m, err := Load(path, domains)
	if err != nil {
		t.Fatal(err)
	}
	if mb, ok := m.Lookup("bob", "example.test"); mb != "robert" || !ok {
		t.Errorf("Lookup after Load = %q, %v", mb, ok)
	}
}

func TestWithoutPostmaster(t *testing.T) {
	for _, c := range []struct {
		file string
		want []string
	}{
		{"alice\n", []string{"example.test", "other.test"}},
		{"postmaster alice\n", nil},
		{"Postmaster@Example.Test alice\n", []string{"other.test"}},
		{"alice\n@other.test catchall\n", []string{"example.test"}},
	} {
		if got := mustParse(t, c.file).WithoutPostmaster(); !slices.Equal(got, c.want) {
			t.Errorf("%q: WithoutPostmaster() = %v, want %v", c.file, got, c.want)
		}
	}
}

func TestWithoutMailbox(t *testing.T) {
	m := mustParse(t, "alice\nbob@example.test robert\n@other.test catchall\npostmaster alice\n")
	got := m.WithoutMailbox([]string{"alice", "bob", "robert", "catchall", "postmaster", "nosuchuser"})
	if want := []string{"bob", "postmaster", "nosuchuser"}; !slices.Equal(got, want) {
		t.Errorf("WithoutMailbox = %v, want %v", got, want)
	}
}

func TestHas(t *testing.T) {
	m := mustParse(t, file)
	for _, c := range []struct {
		local, domain string
		want          bool
	}{
		{"alice", "example.test", true},
		{"Bob", "example.test", true},
		{"dave", "other.test", true},
		{"nobody", "other.test", false}, // the catch-all's, not its own
		{"alice", "elsewhere.test", false},
	} {
		if got := m.Has(c.local, c.domain); got != c.want {
			t.Errorf("Has(%s@%s) = %v", c.local, c.domain, got)
		}
	}
}
