package durable

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// noTemps fails the test if dir holds a leftover temporary file.
func noTemps(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			t.Errorf("temporary file %s left in %s", e.Name(), dir)
		}
	}
}

func TestWriteFileReplaces(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "envelope")
	for _, content := range []string{"first version", "second"} {
		if err := WriteFile(path, []byte(content)); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != content {
			t.Errorf("content %q, want %q", got, content)
		}
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if mode := fi.Mode().Perm(); mode != 0o600 {
		t.Errorf("mode %v, want 0600", mode)
	}
	noTemps(t, dir)
}

func TestWriteFileMissingDir(t *testing.T) {
	err := WriteFile(filepath.Join(t.TempDir(), "nope", "f"), []byte("x"))
	if err == nil {
		t.Fatal("WriteFile into a missing directory succeeded")
	}
}

func TestCommit(t *testing.T) {
	dir := t.TempDir()
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(f, "body")
	final := filepath.Join(dir, "msg")
	if err := Commit(f, final); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(final); string(got) != "body" {
		t.Errorf("content %q, want %q", got, "body")
	}
	noTemps(t, dir)
}

func TestCommitErrorRemovesTemp(t *testing.T) {
	dir := t.TempDir()
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(f, "body")
	// Renaming a file over a non-empty directory fails.
	final := filepath.Join(dir, "occupied")
	if err := os.MkdirAll(filepath.Join(final, "child"), 0o700); err != nil {
		t.Fatal(err)
	}
	err = Commit(f, final)
	if err == nil {
		t.Fatal("Commit over a directory succeeded")
	}
	if !strings.Contains(err.Error(), "durable: rename") {
		t.Errorf("error %q lacks context", err)
	}
	if _, err := os.Stat(f.Name()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temp file still there: %v", err)
	}
	noTemps(t, dir)
}

func TestIsNoSpace(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("write: %w", &os.PathError{Op: "write", Path: "x", Err: syscall.ENOSPC}), true},
		{fmt.Errorf("write: %w", syscall.EDQUOT), true},
		{syscall.EIO, false},
		{nil, false},
	} {
		if got := IsNoSpace(c.err); got != c.want {
			t.Errorf("IsNoSpace(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

func TestRenameNoReplace(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	os.WriteFile(a, []byte("new"), 0o600)
	os.WriteFile(b, []byte("kept"), 0o600)
	if err := RenameNoReplace(a, b); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("onto an existing file: %v, want ErrExist", err)
	}
	if got, _ := os.ReadFile(b); string(got) != "kept" {
		t.Errorf("existing file replaced: %q", got)
	}
	os.Remove(b)
	if err := RenameNoReplace(a, b); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(a); !os.IsNotExist(err) {
		t.Error("old name still there")
	}
}

// Where the filesystem has no renameat2 flags, a link and an unlink do the
// same: never replacing, and taking an EEXIST that names old itself (an
// NFS LINK resent after its reply was lost) for success.
func TestRenameNoReplaceFallback(t *testing.T) {
	for _, errno := range []error{syscall.EINVAL, syscall.ENOSYS} {
		unsupported := func(string, string) error { return errno }
		dir := t.TempDir()
		a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
		os.WriteFile(a, []byte("new"), 0o600)
		os.WriteFile(b, []byte("kept"), 0o600)
		if err := renameNoReplace(a, b, unsupported); !errors.Is(err, fs.ErrExist) {
			t.Fatalf("%v: onto an existing file: %v, want ErrExist", errno, err)
		}
		if got, _ := os.ReadFile(b); string(got) != "kept" {
			t.Errorf("%v: existing file replaced: %q", errno, got)
		}
		if got, _ := os.ReadFile(a); string(got) != "new" {
			t.Errorf("%v: old file lost: %q", errno, got)
		}
		os.Remove(b)
		if err := renameNoReplace(a, b, unsupported); err != nil {
			t.Fatalf("%v: %v", errno, err)
		}
		if got, _ := os.ReadFile(b); string(got) != "new" {
			t.Errorf("%v: moved file holds %q", errno, got)
		}
		if _, err := os.Stat(a); !os.IsNotExist(err) {
			t.Errorf("%v: old name still there", errno)
		}
		// The resent LINK: b is already a link to c.
		c := filepath.Join(dir, "c")
		if err := os.Rename(b, c); err != nil {
			t.Fatal(err)
		}
		if err := os.Link(c, b); err != nil {
			t.Fatal(err)
		}
		if err := renameNoReplace(c, b, unsupported); err != nil {
			t.Errorf("%v: onto a link to itself: %v", errno, err)
		}
		if _, err := os.Stat(c); !os.IsNotExist(err) {
			t.Errorf("%v: old name still there after the resent link", errno)
		}
	}
	// Any other error is the rename's own and stops there.
	dir := t.TempDir()
	a := filepath.Join(dir, "a")
	os.WriteFile(a, []byte("x"), 0o600)
	eio := func(string, string) error { return syscall.EIO }
	if err := renameNoReplace(a, filepath.Join(dir, "b"), eio); !errors.Is(err, syscall.EIO) {
		t.Errorf("rename failing with EIO: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "b")); !os.IsNotExist(err) {
		t.Error("a failed rename was completed by a link")
	}
}

// Refill writes over a file's old bytes and cuts what is left of them,
// whether the new content is shorter or longer.
func TestRefill(t *testing.T) {
	path := filepath.Join(t.TempDir(), "spare")
	if err := os.WriteFile(path, []byte(strings.Repeat("old ", 100)), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, body := range []string{"short", strings.Repeat("longer than before ", 100)} {
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		n, err := Refill(f, []byte("head\n"), strings.NewReader(body))
		f.Close()
		if err != nil || n != int64(len("head\n")+len(body)) {
			t.Fatalf("Refill = %d, %v", n, err)
		}
		if got, _ := os.ReadFile(path); string(got) != "head\n"+body {
			t.Errorf("file holds %q, want %q", got, "head\n"+body)
		}
	}
}

// OpenFile keeps os.OpenFile's meaning: mode, O_EXCL, and errors that
// errors.Is can read, which Maildir's retry and the queue rely on.
func TestOpenFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	f, err := OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 || fi.Size() != 1 {
		t.Errorf("stat: %v, %v", fi, err)
	}
	if _, err := OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600); !errors.Is(err, fs.ErrExist) {
		t.Errorf("second O_EXCL create: %v, want ErrExist", err)
	}
	if _, err := OpenFile(filepath.Join(path+"-gone", "f"), os.O_WRONLY|os.O_CREATE, 0o600); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("create in a missing directory: %v, want ErrNotExist", err)
	}
}
