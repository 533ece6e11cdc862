package maildir

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"facteur/internal/durable"
)

// Deliver stores one message in each of mailboxes: header (already
// CRLF-terminated lines) followed by everything read from body, which is
// streamed, never held whole in memory. It returns once every copy is durable
// in its Maildir/new, with the base names of the new files (all copies share
// one name), in the order of the mailboxes after removing duplicates.
//
// Delivery is all or nothing: if a mailbox name is not ValidMailbox nothing is
// written; if body or any file operation fails, every file this call created
// is removed and the error, which wraps body's, is returned.
func (s *Store) Deliver(mailboxes []string, header []byte, body io.Reader) ([]string, error) {
	boxes, err := distinct(mailboxes)
	if err != nil {
		return nil, err
	}
	d := &delivery{name: s.uniqueName(time.Now())}
	if err := d.run(s, boxes, header, body); err != nil {
		d.abort()
		return nil, err
	}
	names := make([]string, len(boxes))
	for i := range names {
		names[i] = d.name
	}
	return names, nil
}

// distinct validates mailboxes and drops repeats, keeping the first order.
func distinct(mailboxes []string) ([]string, error) {
	if len(mailboxes) == 0 {
		return nil, errors.New("maildir: no mailbox to deliver to")
	}
	seen := make(map[string]bool, len(mailboxes))
	var boxes []string
	for _, m := range mailboxes {
		if !ValidMailbox(m) {
			return nil, fmt.Errorf("maildir: mailbox %q is not a plain name", m)
		}
		if !seen[m] {
			seen[m] = true
			boxes = append(boxes, m)
		}
	}
	return boxes, nil
}

// delivery remembers every file one Deliver call created, so that a failure
// at any step can take them all back.
type delivery struct {
	name string
	tmps []string // created under tmp/, one per mailbox in order
	news []string // renamed into new/
}

// retry runs step, which must not have consumed anything when it fails, and
// once more after creating the Maildir of mailbox if it failed for want of a
// directory: on the first delivery to mailbox, or when its Maildir was
// removed while the server runs.
func (s *Store) retry(mailbox string, step func() error) error {
	err := step()
	if errors.Is(err, fs.ErrNotExist) {
		if err := s.prepare(mailbox); err != nil {
			return err
		}
		err = step()
	}
	return err
}

func (d *delivery) run(s *Store, boxes []string, header []byte, body io.Reader) error {
	first := filepath.Join(s.dir(boxes[0], "tmp"), d.name)
	var f *os.File
	if err := s.retry(boxes[0], func() (err error) { f, err = d.create(first); return err }); err != nil {
		return err
	}
	// Durable before its rename into new/; that also covers the hard links
	// made to it below: they share the inode.
	_, err := durable.Fill(f, header, body)
	if err == nil {
		err = s.sync.Content(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("maildir: store message in %s: %w", first, err)
	}
	for _, m := range boxes[1:] {
		dst := filepath.Join(s.dir(m, "tmp"), d.name)
		if err := s.retry(m, func() error { return d.link(s.sync, first, dst) }); err != nil {
			return err
		}
	}
	for i, m := range boxes {
		final := filepath.Join(s.dir(m, "new"), d.name)
		if err := s.retry(m, func() error { return durable.Rename(d.tmps[i], final) }); err != nil {
			return fmt.Errorf("maildir: %w", err)
		}
		d.news = append(d.news, final)
	}
	// Each new/ is synced concurrently: with many local recipients the
	// syncs would otherwise add up (with sync = "filesystem" those of one
	// filesystem are one anyway).
	errs := make([]error, len(boxes))
	var wg sync.WaitGroup
	for i, m := range boxes {
		wg.Go(func() { errs[i] = s.sync.Names(s.dir(m, "new")) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("maildir: %w", err)
	}
	return nil
}

// create makes the first copy's file in tmp/.
func (d *delivery) create(path string) (*os.File, error) {
	f, err := durable.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("maildir: create %s: %w", path, err)
	}
	d.tmps = append(d.tmps, path)
	return f, nil
}

// link gives another mailbox the message as a hard link, or as a copy where
// linking fails (another filesystem, no hard links, link limit reached).
func (d *delivery) link(sync durable.Mode, src, dst string) error {
	if err := os.Link(src, dst); err == nil {
		d.tmps = append(d.tmps, dst)
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("maildir: copy %s: %w", src, err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("maildir: copy to %s: %w", dst, err)
	}
	d.tmps = append(d.tmps, dst)
	_, err = io.Copy(out, in)
	if err == nil {
		err = sync.Content(out)
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("maildir: copy to %s: %w", dst, err)
	}
	return nil
}

// abort removes every file the delivery created, best effort: the caller
// reports the original error, and CleanTmp collects what is left in tmp/.
func (d *delivery) abort() {
	for _, p := range d.tmps {
		os.Remove(p)
	}
	for _, p := range d.news {
		os.Remove(p)
	}
}
