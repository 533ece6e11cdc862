package durable

import (
	"errors"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// Rename is rename(2) and nothing else. os.Rename first stats newpath, to
// refuse a directory there; the names renamed to here are fresh ones, and
// that lookup in a big Maildir/new was 3 % of the CPU of a delivery.
func Rename(oldpath, newpath string) error {
	if err := syscall.Rename(oldpath, newpath); err != nil {
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: err}
	}
	return nil
}

// RenameNoReplace moves old to new unless new exists, in which case it
// fails with an error satisfying errors.Is(err, fs.ErrExist) and changes
// nothing. It is one renameat2(RENAME_NOREPLACE); where the filesystem
// lacks it, a link and an unlink do the same in two steps.
func RenameNoReplace(oldpath, newpath string) error {
	err := unix.Renameat2(unix.AT_FDCWD, oldpath, unix.AT_FDCWD, newpath, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
		if err := os.Link(oldpath, newpath); err != nil {
			return err
		}
		return os.Remove(oldpath)
	}
	if err != nil {
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: err}
	}
	return nil
}
