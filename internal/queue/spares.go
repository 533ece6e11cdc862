package queue

import (
	"os"
	"path/filepath"
	"sync"

	"facteur/internal/durable"
)

// spares are spent message files kept to hold later messages. A relay that
// creates a file for every message and deletes it once delivered pays for
// both in the filesystem: on ext4 without a journal, creating a file checks
// every inode deleted in the last 30 seconds, under the directory's lock, and
// that was 44 % of facteur's CPU relaying at full speed. Rewriting a spent
// file keeps its inode (and its blocks, when the sizes are alike).
//
// A spare is named .spare-<run>-<id> in the spool directory (run: see
// spool); it is never read as a message, and becomes one only by the same
// fsync-then-rename that makes a new file live. Spares are bounded in number and size, so they hold little
// disk.
type spares struct {
	dir   string
	run   string // the process's token (see spool)
	mu    sync.Mutex
	names []string // paths of the spares not in use
}

const (
	sparePref = ".spare-"
	maxSpares = 256
	// maxSpareSize is the largest file kept: a few big messages must not
	// leave megabytes behind.
	maxSpareSize = 256 << 10
)

// take hands out a spare, which no one else gets until it is kept again.
func (s *spares) take() (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.names) == 0 {
		return "", false
	}
	name := s.names[len(s.names)-1]
	s.names = s.names[:len(s.names)-1]
	return name, true
}

// keep renames the spent file path to a spare when there is room and it is
// small enough, and reports whether it did; otherwise path is untouched.
// No directory fsync: a rename lost in a power cut brings the message back,
// to be delivered again, just as a lost unlink would.
func (s *spares) keep(path string, size int64) bool {
	if size > maxSpareSize {
		return false
	}
	s.mu.Lock()
	full := len(s.names) >= maxSpares
	s.mu.Unlock()
	if full {
		return false
	}
	name := filepath.Join(s.dir, sparePref+s.run+"-"+NewID())
	if err := durable.RenameNoReplace(path, name); err != nil {
		return false
	}
	s.adopt(name)
	return true
}

// adopt adds an existing spare to the pool, deleting it when the pool is
// full (start-up finds as many as a previous run left).
func (s *spares) adopt(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.names) >= maxSpares {
		os.Remove(name)
		return
	}
	s.names = append(s.names, name)
}
