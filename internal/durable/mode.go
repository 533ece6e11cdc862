package durable

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Mode is how the delivery paths (Maildir, queue) make a new file durable.
// Either way its content is on stable storage before its final name is made,
// and that name before the caller goes on (and so before any 250); the modes
// differ in how many messages one disk flush serves.
type Mode int

const (
	// Filesystem syncs the whole filesystem with syncfs(2), one call shared
	// by every message waiting at that moment, whatever its directory: a
	// flush of the disk's cache and a write of each metadata block serve
	// them all, where fsync pays both per file. It also writes out whatever
	// else is dirty on that filesystem, so another program writing a lot
	// there slows deliveries down (put the data directory on its own
	// filesystem, or choose File). It is the zero Mode.
	Filesystem Mode = iota
	// File fsyncs each file, then its directory (shared by the callers of
	// one directory, see SyncDir).
	File
)

// ParseMode reads the names that the configuration uses.
func ParseMode(s string) (Mode, error) {
	switch s {
	case "filesystem":
		return Filesystem, nil
	case "file":
		return File, nil
	}
	return 0, fmt.Errorf("%q is not one of filesystem, file", s)
}

func (m Mode) String() string {
	if m == File {
		return "file"
	}
	return "filesystem"
}

// Effective is the mode m works as on this kernel: syncfs(2) reports write
// errors only since Linux 5.8, so before it Filesystem works as File.
func (m Mode) Effective() Mode {
	if m == Filesystem && !syncfsReportsErrors() {
		return File
	}
	return m
}

// Content makes what was written to f durable: its data and its size. f
// stays open.
func (m Mode) Content(f *os.File) error {
	if m.Effective() == File {
		if err := f.Sync(); err != nil {
			return fmt.Errorf("durable: fsync %s: %w", f.Name(), err)
		}
		return nil
	}
	var st unix.Stat_t
	if err := withFd(f, func(fd int) error { return unix.Fstat(fd, &st) }); err != nil {
		return fmt.Errorf("durable: stat %s: %w", f.Name(), err)
	}
	if err := syncFS(st.Dev, filepath.Dir(f.Name())); err != nil {
		return err
	}
	// syncfs has written f's pages; this writes none and flushes nothing,
	// but reports a write error of f's own since it was opened, just as
	// fsync would, which syncfs may have reported to another caller.
	const all = unix.SYNC_FILE_RANGE_WAIT_BEFORE | unix.SYNC_FILE_RANGE_WRITE | unix.SYNC_FILE_RANGE_WAIT_AFTER
	if err := withFd(f, func(fd int) error { return unix.SyncFileRange(fd, 0, 0, all) }); err != nil {
		return fmt.Errorf("durable: write %s: %w", f.Name(), err)
	}
	return nil
}

// withFd runs op on f's descriptor while f holds it open (f.Fd would let
// a concurrent Close pull it away).
func withFd(f *os.File, op func(fd int) error) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var opErr error
	if err := rc.Control(func(fd uintptr) { opErr = op(int(fd)) }); err != nil {
		return err
	}
	return opErr
}

// Names makes the creates and renames already done in dir durable.
func (m Mode) Names(dir string) error {
	if m.Effective() == File {
		return SyncDir(dir)
	}
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return fmt.Errorf("durable: stat %s: %w", dir, err)
	}
	return syncFS(st.Dev, dir)
}

// filesystem is the group commit of one filesystem. Every syncfs goes
// through one descriptor kept open for good: the kernel reports a write
// error to each descriptor once, to the next syncfs after it happened, so a
// descriptor opened for each call would miss the errors of the writes done
// before it was opened.
type filesystem struct {
	group *group
	mu    sync.Mutex
	fd    int // -1 until opened
}

var filesystems sync.Map // device number -> *filesystem

// syncFS syncs the filesystem numbered dev, which holds the directory dir,
// through which it is opened the first time. The descriptor is a
// directory's: one of a file would keep a deleted file's blocks.
func syncFS(dev uint64, dir string) error {
	v, ok := filesystems.Load(dev)
	if !ok {
		v, _ = filesystems.LoadOrStore(dev, &filesystem{group: newGroup(), fd: -1})
	}
	fs := v.(*filesystem)
	fd, err := fs.open(dir)
	if err != nil {
		return err
	}
	if err := fs.group.sync(func() error { return unix.Syncfs(fd) }); err != nil {
		return fmt.Errorf("durable: syncfs of the filesystem of %s: %w", dir, err)
	}
	return nil
}

func (fs *filesystem) open(dir string) (int, error) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.fd < 0 {
		fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return -1, fmt.Errorf("durable: open %s for syncfs: %w", dir, err)
		}
		fs.fd = fd
	}
	return fs.fd, nil
}

var syncfsReportsErrors = sync.OnceValue(func() bool {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return false
	}
	return kernelAtLeast(unix.ByteSliceToString(u.Release[:]), 5, 8)
})

// kernelAtLeast reads the leading "major.minor" of a kernel release such as
// "6.1.0-13-amd64".
func kernelAtLeast(release string, major, minor int) bool {
	majStr, rest, ok := strings.Cut(release, ".")
	if !ok {
		return false
	}
	maj, err := strconv.Atoi(majStr)
	if err != nil {
		return false
	}
	digits := strings.IndexFunc(rest, func(r rune) bool { return r < '0' || r > '9' })
	if digits >= 0 {
		rest = rest[:digits]
	}
	min, err := strconv.Atoi(rest)
	if err != nil {
		return false
	}
	return maj > major || maj == major && min >= minor
}
