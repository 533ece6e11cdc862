package durable

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// SyncDir fsyncs dir so that the creates and renames already done in it
// survive a crash. Directory fsyncs are slow and every delivery needs one,
// so concurrent callers for the same directory share them (see group).
func SyncDir(dir string) error {
	return dirs.sync(dir)
}

// dirs is the process-wide group committer; tests build their own syncer with
// a counting fsync instead of swapping this one.
var dirs = &syncer{fsync: fsyncDir}

type syncer struct {
	fsync func(dir string) error
	dirs  sync.Map // filepath.Clean(dir) -> *group; one entry per directory ever synced
}

func (s *syncer) sync(dir string) error {
	dir = filepath.Clean(dir)
	g, ok := s.dirs.Load(dir)
	if !ok {
		g, _ = s.dirs.LoadOrStore(dir, newGroup())
	}
	return g.(*group).sync(func() error { return s.fsync(dir) })
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
