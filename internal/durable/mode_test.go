package durable

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestParseMode(t *testing.T) {
	for _, m := range []Mode{Filesystem, File} {
		got, err := ParseMode(m.String())
		if err != nil || got != m {
			t.Errorf("ParseMode(%q) = %v, %v", m.String(), got, err)
		}
	}
	if _, err := ParseMode("fsync"); err == nil {
		t.Error(`ParseMode("fsync") succeeded`)
	}
}

func TestKernelAtLeast(t *testing.T) {
	for _, c := range []struct {
		release string
		want    bool
	}{
		{"5.8.0", true}, {"5.10.0-13-amd64", true}, {"6.1.0", true}, {"6.18.44-fc-v669", true},
		{"5.7.19", false}, {"4.19.0-26-amd64", false}, {"5.8-rc1", true}, {"3.10.0-1160.el7.x86_64", false},
		{"", false}, {"garbage", false}, {"5.x", false},
	} {
		if got := kernelAtLeast(c.release, 5, 8); got != c.want {
			t.Errorf("kernelAtLeast(%q, 5, 8) = %v, want %v", c.release, got, c.want)
		}
	}
}

// A caller that arrives while a sync runs is covered by the next one, but
// the running one may be the one that wrote its data and met the disk's
// error: the kernel reports that error once, to that sync. So the caller
// must get it too, even though its own sync then succeeds.
func TestGroupReportsErrorOfSyncRunningAtArrival(t *testing.T) {
	g := newGroup()
	entered, release := make(chan struct{}), make(chan struct{})
	eio := errors.New("EIO")
	var calls int
	sync := func() error {
		calls++
		if calls == 1 {
			close(entered)
			<-release
			return eio
		}
		return nil
	}
	first := make(chan error)
	go func() { first <- g.sync(sync) }()
	<-entered
	second := make(chan error)
	go func() { second <- g.sync(sync) }()
	waitWaiting(t, g)
	close(release)
	if err := <-first; err != eio {
		t.Errorf("first caller: %v, want the failed sync's error", err)
	}
	if err := <-second; err != eio {
		t.Errorf("caller that arrived during the failed sync: %v, want its error", err)
	}
	if calls != 2 {
		t.Errorf("%d syncs, want 2", calls)
	}
	// A failure is not for ever: a caller after it is answered by its own.
	if err := g.sync(sync); err != nil {
		t.Errorf("caller after the failure: %v", err)
	}
}

// The sync that ended just before a caller arrived may have written what
// the caller wrote before calling, and met the error: it fails that caller
// too, and only that one.
func TestGroupReportsErrorOfSyncJustEnded(t *testing.T) {
	g := newGroup()
	eio := errors.New("EIO")
	if err := g.sync(func() error { return eio }); err != eio {
		t.Fatalf("failed sync: %v", err)
	}
	ok := func() error { return nil }
	if err := g.sync(ok); err != eio {
		t.Errorf("caller right after the failed sync: %v, want its error", err)
	}
	if err := g.sync(ok); err != nil {
		t.Errorf("caller after a successful sync: %v", err)
	}
}

// waitWaiting returns once a second caller is queued behind the running
// sync of g, so that the test knows when that caller arrived.
func waitWaiting(t *testing.T, g *group) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		g.mu.Lock()
		queued := g.waiting > 0
		g.mu.Unlock()
		if queued {
			return
		}
	}
	t.Fatal("second caller never queued")
}

// Each mode makes the same files, whatever the number of writers at once;
// with Filesystem, one descriptor serves every directory of a filesystem.
func TestModesWriteFiles(t *testing.T) {
	for _, m := range []Mode{Filesystem, File} {
		t.Run(m.String(), func(t *testing.T) {
			root := t.TempDir()
			tmp, final := filepath.Join(root, "tmp"), filepath.Join(root, "new")
			for _, d := range []string{tmp, final} {
				if err := os.Mkdir(d, 0o700); err != nil {
					t.Fatal(err)
				}
			}
			const n = 50
			var wg sync.WaitGroup
			errs := make(chan error, n)
			for i := range n {
				wg.Go(func() { errs <- writeOne(m, tmp, final, i) })
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			for i := range n {
				got, err := os.ReadFile(filepath.Join(final, fmt.Sprint(i)))
				if err != nil || string(got) != fmt.Sprintf("head %d\nbody\n", i) {
					t.Errorf("file %d: %q, %v", i, got, err)
				}
			}
			if m.Effective() != Filesystem {
				return
			}
			var st syscall.Stat_t
			if err := syscall.Stat(root, &st); err != nil {
				t.Fatal(err)
			}
			v, ok := filesystems.Load(st.Dev)
			if !ok || v.(*filesystem).fd < 0 {
				t.Fatalf("no open descriptor for the filesystem of %s", root)
			}
		})
	}
}

// writeOne is a delivery as Maildir and the queue do it.
func writeOne(m Mode, tmp, final string, i int) error {
	f, err := os.Create(filepath.Join(tmp, fmt.Sprint(i)))
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := Fill(f, fmt.Appendf(nil, "head %d\n", i), strings.NewReader("body\n")); err != nil {
		return err
	}
	if err := m.Content(f); err != nil {
		return err
	}
	if err := Rename(f.Name(), filepath.Join(final, fmt.Sprint(i))); err != nil {
		return err
	}
	return m.Names(final)
}

func TestNamesOfMissingDirectory(t *testing.T) {
	for _, m := range []Mode{Filesystem, File} {
		if err := m.Names(filepath.Join(t.TempDir(), "gone")); err == nil {
			t.Errorf("%s: Names of a missing directory succeeded", m)
		}
	}
}

func TestSyncfsDurable(t *testing.T) {
	for _, c := range []struct {
		magic uint32
		want  bool
	}{
		{0xef53, true},      // ext2/3/4
		{0x58465342, true},  // xfs
		{0x9123683e, true},  // btrfs
		{0xf2f52010, true},  // f2fs
		{0x01021994, true},  // tmpfs
		{0x65735546, false}, // FUSE: GlusterFS, ceph-fuse
		{0x6969, false},     // NFS
		{0xff534d42, false}, // cifs
		{0x00c36400, false}, // CephFS
		{0x794c7630, false}, // overlayfs
		{0x2fc12fc1, false}, // ZFS
		{0, false},
	} {
		if got := syncfsDurable(c.magic); got != c.want {
			t.Errorf("syncfsDurable(%#x) = %v, want %v", c.magic, got, c.want)
		}
	}
	if got := fsName(0x65735546); got != "FUSE" {
		t.Errorf("fsName(FUSE) = %q", got)
	}
}

// /proc is a filesystem syncfs knows nothing of: Filesystem works as File
// there, and says why.
func TestEffectiveIn(t *testing.T) {
	if Filesystem.Effective() != Filesystem {
		t.Skip("this kernel makes Filesystem work as File everywhere")
	}
	m, why, err := Filesystem.EffectiveIn("/proc")
	if err != nil || m != File || !strings.Contains(why, "filesystem type 0x9fa0") {
		t.Errorf("EffectiveIn(/proc) = %v, %q, %v; want file and the type", m, why, err)
	}
	if m, why, err := File.EffectiveIn("/proc"); m != File || why != "" || err != nil {
		t.Errorf("File.EffectiveIn = %v, %q, %v", m, why, err)
	}
	if _, _, err := Filesystem.EffectiveIn(filepath.Join(t.TempDir(), "gone")); err == nil {
		t.Error("EffectiveIn of a missing directory succeeded")
	}
}

// Where syncfs is not trusted, Filesystem never calls it: each file and
// directory is fsync'd. The filesystem of the test directory is made to
// look so, with a descriptor on which syncfs would fail; the same entry
// marked trusted must fail, or the test proves nothing.
func TestFilesystemUntrustedWorksAsFile(t *testing.T) {
	if Filesystem.Effective() != Filesystem {
		t.Skip("this kernel makes Filesystem work as File everywhere")
	}
	root := t.TempDir()
	var st syscall.Stat_t
	if err := syscall.Stat(root, &st); err != nil {
		t.Fatal(err)
	}
	prev, had := filesystems.Load(st.Dev)
	t.Cleanup(func() {
		if had {
			filesystems.Store(st.Dev, prev)
		} else {
			filesystems.Delete(st.Dev)
		}
	})
	for _, trusted := range []bool{false, true} {
		filesystems.Store(st.Dev, &filesystem{group: newGroup(), fd: -1, syncfs: trusted})
		dir := filepath.Join(root, fmt.Sprint(trusted))
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		err := writeOne(Filesystem, dir, dir, 1)
		if !trusted && err != nil {
			t.Errorf("untrusted filesystem: %v", err)
		}
		if trusted && !errors.Is(err, syscall.EBADF) {
			t.Errorf("trusted filesystem with a bad descriptor: %v, want EBADF from syncfs", err)
		}
	}
}
