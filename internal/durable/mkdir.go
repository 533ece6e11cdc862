package durable

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// mkdirMu keeps MkdirAll from reporting a directory as present while another
// goroutine has created it but not yet fsync'd its parent: a caller that then
// wrote into it could lose the whole directory in a crash. Creation is rare
// (first delivery to a mailbox), so one lock for every path is enough and the
// common "already there" check only takes it for reading.
var mkdirMu sync.RWMutex

// MkdirAll creates dir and any missing parents, mode 0700, and fsyncs the
// parent of every directory it created so that the new tree survives a power
// cut.
func MkdirAll(dir string) error {
	dir = filepath.Clean(dir)
	mkdirMu.RLock()
	ok, err := isDir(dir)
	mkdirMu.RUnlock()
	if ok || err != nil {
		return err
	}

	mkdirMu.Lock()
	defer mkdirMu.Unlock()
	var missing []string // deepest first
	for d := dir; ; d = filepath.Dir(d) {
		ok, err := isDir(d)
		if err != nil {
			return err
		}
		if ok || filepath.Dir(d) == d {
			break
		}
		missing = append(missing, d)
	}
	for i := len(missing) - 1; i >= 0; i-- {
		err := os.Mkdir(missing[i], 0o700)
		if errors.Is(err, fs.ErrExist) {
			// Another process got there first; fine if it made a directory.
			if ok, err2 := isDir(missing[i]); ok || err2 != nil {
				err = err2
			}
		}
		if err != nil {
			return fmt.Errorf("durable: mkdir %s: %w", missing[i], err)
		}
	}
	for i := len(missing) - 1; i >= 0; i-- {
		if err := SyncDir(filepath.Dir(missing[i])); err != nil {
			return fmt.Errorf("durable: mkdir %s: %w", missing[i], err)
		}
	}
	return nil
}

// isDir reports whether path is an existing directory; a missing path is not
// an error, anything else in the way is.
func isDir(path string) (bool, error) {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("durable: stat %s: %w", path, err)
	case !fi.IsDir():
		return false, fmt.Errorf("durable: %s exists and is not a directory", path)
	}
	return true, nil
}
