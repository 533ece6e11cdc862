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
	// filesystem, or choose File). On a filesystem where syncfs is not
	// known to make data durable (see syncfsDurable) it works as File. It
	// is the zero Mode.
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

// EffectiveIn is the mode m works as for the files under dir: Effective,
// and File also where dir's filesystem is one on which syncfs is not known
// to make data durable. why says what made it differ from m, "" when it
// does not.
func (m Mode) EffectiveIn(dir string) (_ Mode, why string, _ error) {
	if e := m.Effective(); e != m {
		return e, "this kernel's syncfs does not report write errors (Linux 5.8 does)", nil
	}
	if m == File {
		return m, "", nil
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return m, "", fmt.Errorf("durable: statfs %s: %w", dir, err)
	}
	if t := uint32(st.Type); !syncfsDurable(t) {
		return File, "syncfs is not known to make data durable on " + fsName(t), nil
	}
	return m, "", nil
}

// syncfsDurable reports whether syncfs(2) is known to make durable the
// data and names written on a filesystem of type magic (statfs's f_type),
// and to report their write errors: the local disk filesystems whose
// sync_fs writes and flushes everything, and tmpfs, which has nothing to
// write either way. Elsewhere each file is fsync'd, the call every
// filesystem is built to honour: FUSE (GlusterFS, ceph-fuse, sshfs)
// passes syncfs to its server only when the server implements it, most do
// not, and then it is a no-op; an NFS client makes a file durable on the
// server by the COMMIT that fsync sends, and reports write errors per open
// file; network and layered filesystems (SMB, Ceph, 9p, overlayfs) each
// have rules of their own. On those, fsync of a directory costs little.
func syncfsDurable(magic uint32) bool {
	switch magic {
	case unix.EXT4_SUPER_MAGIC, unix.XFS_SUPER_MAGIC, unix.BTRFS_SUPER_MAGIC, unix.F2FS_SUPER_MAGIC, unix.TMPFS_MAGIC:
		return true
	}
	return false
}

// fsName names the filesystem types an operator is likely to meet in a log
// line.
func fsName(magic uint32) string {
	switch magic {
	case unix.FUSE_SUPER_MAGIC:
		return "FUSE"
	case unix.NFS_SUPER_MAGIC:
		return "NFS"
	case unix.SMB_SUPER_MAGIC, 0xff534d42, 0xfe534d42: // smbfs, cifs, smb2
		return "SMB"
	case unix.CEPH_SUPER_MAGIC:
		return "CephFS"
	case unix.V9FS_MAGIC:
		return "9p"
	case unix.OVERLAYFS_SUPER_MAGIC:
		return "overlayfs"
	case 0x2fc12fc1:
		return "ZFS"
	}
	return fmt.Sprintf("filesystem type %#x", magic)
}

// Content makes what was written to f durable: its data and its size. f
// stays open.
func (m Mode) Content(f *os.File) error {
	if m.Effective() == Filesystem {
		var st unix.Stat_t
		if err := withFd(f, func(fd int) error { return unix.Fstat(fd, &st) }); err != nil {
			return fmt.Errorf("durable: stat %s: %w", f.Name(), err)
		}
		dir := filepath.Dir(f.Name())
		fs, err := filesystemOf(st.Dev, dir)
		if err != nil {
			return err
		}
		if fs.syncfs {
			if err := fs.sync(dir); err != nil {
				return err
			}
			// syncfs has written f's pages; this writes none and flushes
			// nothing, but reports a write error of f's own since it was
			// opened, just as fsync would, which syncfs may have reported
			// to another caller.
			const all = unix.SYNC_FILE_RANGE_WAIT_BEFORE | unix.SYNC_FILE_RANGE_WRITE | unix.SYNC_FILE_RANGE_WAIT_AFTER
			if err := withFd(f, func(fd int) error { return unix.SyncFileRange(fd, 0, 0, all) }); err != nil {
				return fmt.Errorf("durable: write %s: %w", f.Name(), err)
			}
			return nil
		}
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("durable: fsync %s: %w", f.Name(), err)
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
	if m.Effective() == Filesystem {
		var st unix.Stat_t
		if err := unix.Stat(dir, &st); err != nil {
			return fmt.Errorf("durable: stat %s: %w", dir, err)
		}
		fs, err := filesystemOf(st.Dev, dir)
		if err != nil {
			return err
		}
		if fs.syncfs {
			return fs.sync(dir)
		}
	}
	return SyncDir(dir)
}

// filesystem is the group commit of one filesystem. Every syncfs goes
// through one descriptor kept open for good: the kernel reports a write
// error to each descriptor once, to the next syncfs after it happened, so a
// descriptor opened for each call would miss the errors of the writes done
// before it was opened.
type filesystem struct {
	group  *group
	fd     int
	syncfs bool // false where syncfs is not trusted: see syncfsDurable
}

var (
	filesystems sync.Map   // device number -> *filesystem
	opening     sync.Mutex // held while a filesystem is added
)

// filesystemOf returns the filesystem numbered dev, which holds the
// directory dir, through which it is opened the first time. The
// descriptor is a directory's: one of a file would keep a deleted file's
// blocks.
func filesystemOf(dev uint64, dir string) (*filesystem, error) {
	if v, ok := filesystems.Load(dev); ok {
		return v.(*filesystem), nil
	}
	opening.Lock()
	defer opening.Unlock()
	if v, ok := filesystems.Load(dev); ok {
		return v.(*filesystem), nil
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("durable: open %s for syncfs: %w", dir, err)
	}
	var st unix.Statfs_t
	if err := unix.Fstatfs(fd, &st); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("durable: statfs %s: %w", dir, err)
	}
	fs := &filesystem{group: newGroup(), fd: fd, syncfs: syncfsDurable(uint32(st.Type))}
	filesystems.Store(dev, fs)
	return fs, nil
}

// sync syncs the filesystem, shared with every caller of the moment.
func (fs *filesystem) sync(dir string) error {
	if err := fs.group.sync(func() error { return unix.Syncfs(fs.fd) }); err != nil {
		return fmt.Errorf("durable: syncfs of the filesystem of %s: %w", dir, err)
	}
	return nil
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
