// Package durable is the one place where facteur makes writes survive a power
// cut: data is written under a temporary name, fsync'd, renamed into place,
// and the directory holding the new name is fsync'd. Maildir delivery and the
// queue both go through it so that the rules live in one file.
package durable

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// WriteFile writes data to path atomically and durably: readers see either the
// old content or the new, never a mix, and once it returns nil the new content
// survives a crash. The file is created mode 0600; on error no temporary file
// is left behind. It syncs as File does.
func WriteFile(path string, data []byte) error {
	return File.WriteFileTemp(path, ".tmp-*", data)
}

// WriteFileTemp is the package's WriteFile with m's syncs (with Filesystem,
// the callers of the moment share each sync) and the temporary file named
// after pattern, as os.CreateTemp names it, for a directory whose owner
// tells its own temporary files from those a crash left by their names
// (the queue's spool).
func (m Mode) WriteFileTemp(path, pattern string, data []byte) error {
	// The temporary file must live in the same directory: rename is atomic only
	// within one filesystem.
	f, err := os.CreateTemp(filepath.Dir(path), pattern)
	if err != nil {
		return fmt.Errorf("durable: create temp for %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(f.Name())
		return fmt.Errorf("durable: write %s: %w", f.Name(), err)
	}
	return m.Commit(f, path)
}

// Commit makes an already-written temporary file durable under its final name
// with File's syncs; see Mode.Commit.
func Commit(f *os.File, final string) error {
	return File.Commit(f, final)
}

// Commit makes an already-written temporary file durable under its final name:
// it syncs and closes f, renames it to final and syncs final's directory, as m
// says. f must be in the same filesystem as final. On error the temporary file
// is removed (final may already hold the new content if only the directory
// sync failed, but it is then not known to be durable).
func (m Mode) Commit(f *os.File, final string) error {
	tmp := f.Name()
	if err := m.Content(f); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("durable: close %s: %w", tmp, err)
	}
	if err := Rename(tmp, final); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("durable: rename %s: %w", tmp, err)
	}
	if err := m.Names(filepath.Dir(final)); err != nil {
		return fmt.Errorf("durable: commit %s: %w", final, err)
	}
	return nil
}

// IsNoSpace reports whether err comes from a full disk or an exhausted quota:
// a condition that may clear, so the SMTP layer answers 452 4.3.1 rather than
// a generic failure.
func IsNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// OpenFile is os.OpenFile for the regular files of the delivery paths. The
// os package offers every file it opens to the network poller, which a
// regular file refuses: four fcntl calls and a failing epoll_ctl around each
// open, a tenth of a Maildir delivery's system calls. A file made by
// os.NewFile from a blocking descriptor is never offered.
func OpenFile(path string, flag int, perm os.FileMode) (*os.File, error) {
	fd, err := unix.Open(path, flag|unix.O_CLOEXEC, uint32(perm.Perm()))
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}
