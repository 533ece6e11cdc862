package durable

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
)

// renameInto creates a file under a temporary name in dir and renames it, the
// way every caller of SyncDir does before calling it.
func renameInto(dir string, i int) error {
	tmp := filepath.Join(dir, fmt.Sprintf(".tmp-%d", i))
	if err := os.WriteFile(tmp, []byte("x"), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, fmt.Sprintf("f%d", i)))
}

func TestSyncDirConcurrent(t *testing.T) {
	dir := t.TempDir()
	const n = 100
	var fsyncs atomic.Int64
	var ready sync.WaitGroup
	ready.Add(n)
	release := make(chan struct{})
	s := &syncer{fsync: func(d string) error {
		// Hold the first fsync until every goroutine has done its rename, so
		// that the others must queue behind it whatever the scheduler does.
		if fsyncs.Add(1) == 1 {
			<-release
		}
		return fsyncDir(d)
	}}

	errs := make(chan error, n)
	for i := range n {
		go func() {
			err := renameInto(dir, i)
			ready.Done()
			if err == nil {
				err = s.sync(dir)
			}
			errs <- err
		}()
	}
	ready.Wait()
	close(release)
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if got := fsyncs.Load(); got >= n {
		t.Errorf("%d callers caused %d fsyncs; want them grouped", n, got)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != n {
		t.Errorf("%d files in dir, want %d", len(entries), n)
	}
}

// A caller that arrives while an fsync runs must not be answered by that
// fsync: it may have started before the caller's rename.
func TestSyncDirWaitsForLaterFsync(t *testing.T) {
	dir := t.TempDir()
	entered := make(chan struct{})
	release := make(chan struct{})
	var calls atomic.Int64
	s := &syncer{fsync: func(string) error {
		if calls.Add(1) == 1 {
			close(entered)
			<-release
		}
		return nil
	}}
	first := make(chan error)
	go func() { first <- s.sync(dir) }()
	<-entered
	second := make(chan error)
	go func() { second <- s.sync(dir) }()
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if err := <-second; err != nil {
		t.Fatal(err)
	}
	if got := calls.Load(); got != 2 {
		t.Errorf("%d fsyncs, want 2: the second caller needs one that started after it", got)
	}
}

func TestSyncDirPublic(t *testing.T) {
	dir := t.TempDir()
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := range 100 {
		wg.Go(func() {
			if err := renameInto(dir, i); err != nil {
				errs <- err
				return
			}
			errs <- SyncDir(dir)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestSyncDirMissing(t *testing.T) {
	if err := SyncDir(filepath.Join(t.TempDir(), "nope")); err == nil {
		t.Fatal("SyncDir of a missing directory succeeded")
	}
}

func BenchmarkSyncDirParallel(b *testing.B) {
	dir := b.TempDir()
	var next atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := renameInto(dir, int(next.Add(1))); err != nil {
				b.Fatal(err)
			}
			if err := SyncDir(dir); err != nil {
				b.Fatal(err)
			}
		}
	})
}
