// Package passwd holds the submission accounts: a file of "user:hash"
// lines, bcrypt hashes, read whole and swapped on reload.
package passwd

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"

	"facteur/internal/durable"
	"facteur/internal/maildir"
)

// cost is bcrypt's work factor for new hashes: about 50 ms here, slow
// enough to make a stolen file expensive, fast enough for a login.
const cost = 11

// MinLength is the shortest password Set takes, in characters: a login
// facing the Internet is guessed at by every botnet.
const MinLength = 8

// ErrTooShort is Set refusing a password shorter than MinLength.
var ErrTooShort = fmt.Errorf("passwords: a password needs at least %d characters", MinLength)

// DB is the parsed passwords file; immutable, safe for concurrent use.
type DB struct {
	hashes map[string][]byte
}

// dummy is compared against for unknown users so that a login takes as
// long whether or not the user exists.
// It is made on first need, not at start: most runs never need it.
var dummy = sync.OnceValue(func() []byte {
	h, _ := bcrypt.GenerateFromPassword([]byte("facteur dummy password"), cost)
	return h
})

// Load reads path. A missing file is returned as an fs.ErrNotExist error.
func Load(path string) (*DB, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err // names the file already
	}
	defer f.Close()
	return Parse(f, path)
}

// Parse reads "user:hash" lines; '#' starts a comment line. Errors name
// the file and line, never the hash; the caller says what the file is for
// (passwords_file).
func Parse(r io.Reader, name string) (*DB, error) {
	db := &DB{hashes: map[string][]byte{}}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		user, hash, ok := strings.Cut(line, ":")
		switch {
		case !ok:
			return nil, fmt.Errorf("%s:%d: want user:hash", name, n)
		case !maildir.ValidMailbox(user):
			return nil, fmt.Errorf("%s:%d: user %q is not a plain name", name, n, user)
		case db.hashes[user] != nil:
			return nil, fmt.Errorf("%s:%d: user %q listed twice", name, n, user)
		}
		if _, err := bcrypt.Cost([]byte(hash)); err != nil {
			return nil, fmt.Errorf("%s:%d: hash of %q is not bcrypt", name, n, user)
		}
		db.hashes[user] = []byte(hash)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return db, nil
}

// Empty is a DB with no accounts: AUTH always fails.
func Empty() *DB { return &DB{hashes: map[string][]byte{}} }

// Len is the number of accounts.
func (db *DB) Len() int { return len(db.hashes) }

// Accounts are the users, sorted.
func (db *DB) Accounts() []string { return slices.Sorted(maps.Keys(db.hashes)) }

// Check reports whether password is user's.
func (db *DB) Check(user, password string) bool {
	h, ok := db.hashes[user]
	if !ok {
		bcrypt.CompareHashAndPassword(dummy(), []byte(password))
		return false
	}
	return bcrypt.CompareHashAndPassword(h, []byte(password)) == nil
}

// Set writes user's new password into the file at path (created if
// missing), keeping every other line, atomically and durably.
func Set(path, user, password string) error { return set(path, user, password, cost) }

// set is Set with the work factor as a parameter, for tests that would
// otherwise spend most of their time hashing.
func set(path, user, password string, cost int) error {
	if !maildir.ValidMailbox(user) {
		return fmt.Errorf("passwords: user %q is not a plain name", user)
	}
	if utf8.RuneCountInString(password) < MinLength {
		return ErrTooShort
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), cost)
	if err != nil {
		return fmt.Errorf("passwords: %w", err)
	}
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("passwords: %w", err)
	}
	var out bytes.Buffer
	replaced := false
	for _, line := range strings.SplitAfter(string(old), "\n") {
		if u, _, ok := strings.Cut(strings.TrimSpace(line), ":"); ok && u == user {
			line, replaced = user+":"+string(hash)+"\n", true
		}
		out.WriteString(line)
	}
	if !replaced {
		if out.Len() > 0 && !bytes.HasSuffix(out.Bytes(), []byte("\n")) {
			out.WriteByte('\n')
		}
		out.WriteString(user + ":" + string(hash) + "\n")
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return fmt.Errorf("passwords: %w", err)
	}
	// root runs this command, the server's user reads the file: the new
	// file keeps the old one's owner.
	if fi, err := os.Stat(path); err == nil && os.Geteuid() == 0 {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			f.Chown(int(st.Uid), int(st.Gid))
		}
	}
	if _, err := f.Write(out.Bytes()); err != nil {
		f.Close()
		os.Remove(f.Name())
		return fmt.Errorf("passwords: %w", err)
	}
	if err := durable.Commit(f, path); err != nil {
		return fmt.Errorf("passwords: %w", err)
	}
	return nil
}
