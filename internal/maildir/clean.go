package maildir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// tmpMaxAge is the Maildir convention: a file in tmp/ untouched for this long
// is the leftover of a crash, never a delivery in progress.
const tmpMaxAge = 36 * time.Hour

// CleanTmp removes the files older than 36 hours from every
// <root>/*/Maildir/tmp (and .Junk/tmp) and returns how many it removed. It goes on past
// errors and returns them all.
func (s *Store) CleanTmp(now time.Time) (int, error) {
	boxes, err := os.ReadDir(s.root)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil // nothing delivered yet
	}
	if err != nil {
		return 0, fmt.Errorf("maildir: clean tmp: %w", err)
	}
	removed := 0
	var errs []error
	// Not filtered on IsDir: a mailbox may be a symlink to a directory.
	var tmps []string
	for _, b := range boxes {
		tmps = append(tmps, s.dir(b.Name(), "", "tmp"), s.dir(b.Name(), Junk, "tmp"))
	}
	for _, tmp := range tmps {
		files, err := os.ReadDir(tmp)
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, f := range files {
			info, err := f.Info()
			if errors.Is(err, fs.ErrNotExist) {
				continue // renamed into new/ meanwhile
			}
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if !info.Mode().IsRegular() || now.Sub(info.ModTime()) <= tmpMaxAge {
				continue
			}
			if err := os.Remove(filepath.Join(tmp, f.Name())); err != nil {
				errs = append(errs, err)
				continue
			}
			removed++
		}
	}
	if err := errors.Join(errs...); err != nil {
		return removed, fmt.Errorf("maildir: clean tmp: %w", err)
	}
	return removed, nil
}
