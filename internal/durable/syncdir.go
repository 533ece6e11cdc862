package durable

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// SyncDir fsyncs dir so that the creates and renames already done in it
// survive a crash.
//
// Directory fsyncs are slow and every delivery needs one, so concurrent
// callers for the same directory share them (group commit): a caller is
// covered only by an fsync that started after it called, so if one is running
// it waits for it to end, and the next one, started by one of the waiters,
// covers everyone who queued meanwhile. At most one fsync per directory runs
// at a time.
func SyncDir(dir string) error {
	return dirs.sync(dir)
}

// dirs is the process-wide group committer; tests build their own syncer with
// a counting fsync instead of swapping this one.
var dirs = &syncer{fsync: fsyncDir}

type syncer struct {
	fsync func(dir string) error
	dirs  sync.Map // filepath.Clean(dir) -> *dirSync; one entry per directory ever synced
}

// dirSync is the group-commit state of one directory. Each fsync is numbered;
// started and done count them.
type dirSync struct {
	mu      sync.Mutex
	cond    sync.Cond
	running bool
	started uint64
	done    uint64
	err     error // result of fsync number done
}

func (s *syncer) sync(dir string) error {
	d := s.state(filepath.Clean(dir))
	d.mu.Lock()
	defer d.mu.Unlock()
	// A running fsync may have begun before the caller's rename; only the next
	// one is sure to cover it.
	want := d.started + 1
	for d.done < want {
		if d.running {
			d.cond.Wait()
			continue
		}
		d.started, d.running = want, true
		d.mu.Unlock()
		err := s.fsync(dir)
		d.mu.Lock()
		d.running, d.done, d.err = false, want, err
		d.cond.Broadcast()
	}
	// A waiter may wake only after a later fsync finished; that one started
	// after the call too, so its result is just as valid for this caller.
	return d.err
}

func (s *syncer) state(dir string) *dirSync {
	if v, ok := s.dirs.Load(dir); ok {
		return v.(*dirSync)
	}
	d := &dirSync{}
	d.cond.L = &d.mu
	v, _ := s.dirs.LoadOrStore(dir, d)
	return v.(*dirSync)
}

func fsyncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("durable: open dir %s: %w", dir, err)
	}
	err = f.Sync()
	f.Close()
	if err != nil {
		return fmt.Errorf("durable: fsync dir %s: %w", dir, err)
	}
	return nil
}
