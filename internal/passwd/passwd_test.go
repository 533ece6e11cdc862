package passwd

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func TestSetThenCheck(t *testing.T) {
	path := filepath.Join(t.TempDir(), "passwords")
	os.WriteFile(path, []byte("# accounts\n"), 0o600)
	if err := set(path, "alice", "s3cret-pw", bcrypt.MinCost); err != nil {
		t.Fatal(err)
	}
	if err := set(path, "bob", "hunter2-pw", bcrypt.MinCost); err != nil {
		t.Fatal(err)
	}
	if err := set(path, "alice", "changed-pw", bcrypt.MinCost); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if strings.Count(string(b), "alice:") != 1 || !strings.HasPrefix(string(b), "# accounts\n") || strings.Contains(string(b), "s3cret-pw") {
		t.Errorf("file:\n%s", b)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode())
	}
	db, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		user, pw string
		ok       bool
	}{{"alice", "changed-pw", true}, {"alice", "s3cret-pw", false}, {"bob", "hunter2-pw", true}, {"bob", "", false}, {"carol", "x", false}} {
		if db.Check(tc.user, tc.pw) != tc.ok {
			t.Errorf("Check(%s, %s) != %v", tc.user, tc.pw, tc.ok)
		}
	}
	if db.Len() != 2 || !slices.Equal(db.Accounts(), []string{"alice", "bob"}) {
		t.Errorf("Len %d, Accounts %v", db.Len(), db.Accounts())
	}
}

func TestSetRefusesShortPasswords(t *testing.T) {
	path := filepath.Join(t.TempDir(), "passwords")
	for _, pw := range []string{"", "x", "1234567", "ééééééé"} {
		if err := set(path, "alice", pw, bcrypt.MinCost); !errors.Is(err, ErrTooShort) {
			t.Errorf("%q: %v, want ErrTooShort", pw, err)
		}
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Error("a refused password wrote the file")
	}
	if err := set(path, "alice", "éééééééé", bcrypt.MinCost); err != nil {
		t.Errorf("8 characters in 16 bytes: %v", err)
	}
}

func TestParseErrors(t *testing.T) {
	for in, want := range map[string]string{
		"alice\n":           "f:1: want user:hash",
		"../x:$2a$10$abc\n": `user "../x" is not a plain name`,
		"alice:plaintext\n": `hash of "alice" is not bcrypt`,
		"# c\nalice:x\n":    "f:2:",
	} {
		// The file name leads: the caller says what the file is for.
		if _, err := Parse(strings.NewReader(in), "f"); err == nil || !strings.Contains(err.Error(), want) || !strings.HasPrefix(err.Error(), "f:") {
			t.Errorf("%q: %v, want %q", in, err, want)
		}
	}
	if err := Set(filepath.Join(t.TempDir(), "p"), "a/b", "x"); err == nil {
		t.Error("Set accepted a user with a slash")
	}
}

func TestSetKeepsOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give the file to another user")
	}
	path := filepath.Join(t.TempDir(), "passwords")
	os.WriteFile(path, nil, 0o600)
	if err := os.Chown(path, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if err := set(path, "alice", "password", bcrypt.MinCost); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(path)
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != 65534 || st.Gid != 65534 {
		t.Errorf("owner %d:%d after Set, want 65534:65534 as before", st.Uid, st.Gid)
	}
}
