package durable

import (
	"errors"
	"io/fs"
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
// lacks it (NFS, and FUSE servers that do not implement it, answer
// EINVAL), a link and an unlink do the same in two steps.
func RenameNoReplace(oldpath, newpath string) error {
	return renameNoReplace(oldpath, newpath, renameat2)
}

func renameat2(oldpath, newpath string) error {
	return unix.Renameat2(unix.AT_FDCWD, oldpath, unix.AT_FDCWD, newpath, unix.RENAME_NOREPLACE)
}

// renameNoReplace is RenameNoReplace with the system call as a parameter,
// so that the tests can take the fallback on any filesystem.
func renameNoReplace(oldpath, newpath string, rename func(oldpath, newpath string) error) error {
	err := rename(oldpath, newpath)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
		return linkUnlink(oldpath, newpath)
	}
	if err != nil {
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: err}
	}
	return nil
}

// linkUnlink moves old to new by a link, which never replaces, and an
// unlink. A link that fails on an existing new which is old itself was
// ours: an NFS client that resends a LINK whose reply was lost gets EEXIST
// from the server that already made it.
func linkUnlink(oldpath, newpath string) error {
	if err := os.Link(oldpath, newpath); err != nil && !(errors.Is(err, fs.ErrExist) && sameFile(oldpath, newpath)) {
		return err
	}
	return os.Remove(oldpath)
}

func sameFile(a, b string) bool {
	fa, err := os.Lstat(a)
	if err != nil {
		return false
	}
	fb, err := os.Lstat(b)
	return err == nil && os.SameFile(fa, fb)
}
