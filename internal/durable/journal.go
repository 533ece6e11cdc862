package durable

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
)

// Journal is a file that only grows, by appends each durable when Append
// returns. The appends of the moment share one fdatasync (group commit): a
// record of many small facts then costs a few bytes each, not a file and two
// syncs each.
type Journal struct {
	f     *os.File
	mu    sync.Mutex // one write at a time, so lines never interleave
	group *group
}

// CreateJournal creates the journal file path, which must not exist, and
// makes its name durable.
func CreateJournal(path string) (*Journal, error) {
	f, err := OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("durable: create journal: %w", err)
	}
	if err := SyncDir(filepath.Dir(path)); err != nil {
		f.Close()
		os.Remove(path)
		return nil, err
	}
	return &Journal{f: f, group: newGroup()}, nil
}

// Append writes b at the end of the journal and returns once it is on
// stable storage. A failed write may leave part of b behind: readers of the
// journal must pass over a torn last record.
func (j *Journal) Append(b []byte) error {
	j.mu.Lock()
	_, err := j.f.Write(b)
	j.mu.Unlock()
	if err != nil {
		return fmt.Errorf("durable: append to %s: %w", j.f.Name(), err)
	}
	// fdatasync writes the file's size with its data: what a reader needs.
	err = j.group.sync(func() error {
		return withFd(j.f, func(fd int) error { return unix.Fdatasync(fd) })
	})
	if err != nil {
		return fmt.Errorf("durable: fdatasync %s: %w", j.f.Name(), err)
	}
	return nil
}

// Name is the journal's path.
func (j *Journal) Name() string { return j.f.Name() }

// Close closes the journal's file.
func (j *Journal) Close() error { return j.f.Close() }
