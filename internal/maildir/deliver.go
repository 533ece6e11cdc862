package maildir

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"facteur/internal/durable"
	msgheader "facteur/internal/header"
)

// Check looks at a message received whole, before it is made durable, and
// says where it goes. msg reads the message as it will be stored (the
// header given to Deliver first), size is its length. An error refuses the
// message: Deliver removes it and returns the error.
type Check func(msg io.Reader, size int64) (Verdict, error)

// Verdict is what a Check decided.
type Verdict struct {
	// Folder is "" for the inbox, or a Maildir++ folder (Junk).
	Folder string
	// Edit, when set, rewrites the header section (its bytes up to and
	// including the empty line that ends it) before the message is stored.
	Edit func(header []byte) []byte
}

// maxEdited bounds the header section read into memory for an Edit.
const maxEdited = 1 << 20

// Deliver stores one message in each of mailboxes: header (already
// CRLF-terminated lines) followed by everything read from body, which is
// streamed, never held whole in memory. check, when not nil, is asked
// where the message goes once it is whole in tmp/ (see Check). Deliver
// returns once every copy is durable in its Maildir's new/ (or the
// folder's), with the base names of the new files, in the order of the
// mailboxes after removing duplicates. The copies share one name unless
// another host sharing the Maildirs took it first (see unique). A delivered
// message is never replaced, by this host or another.
//
// Delivery is all or nothing: if a mailbox name is not ValidMailbox nothing is
// written; if body, check or any file operation fails, every file this call
// created is removed and the error, which wraps body's or check's, is
// returned.
func (s *Store) Deliver(mailboxes []string, header []byte, body io.Reader, check Check) ([]string, error) {
	boxes, err := distinct(mailboxes)
	if err != nil {
		return nil, err
	}
	folder := ""
	if check != nil {
		buf := smalls.Get().(*[]byte)
		defer smalls.Put(buf)
		var whole bool
		if header, body, folder, whole, err = checkSmall(header, body, check, *buf); err != nil {
			return nil, err
		}
		if whole {
			check = nil
		}
	}
	d := &delivery{name: s.names.next(s.host)}
	if err := d.run(s, boxes, folder, header, body, check); err != nil {
		d.abort()
		return nil, err
	}
	names := make([]string, len(d.news))
	for i, p := range d.news {
		names[i] = filepath.Base(p)
	}
	return names, nil
}

// smalls hold the messages checked in memory, up to 64 KiB: most mail.
var smalls = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

// checkSmall reads body into buf and, if it ends there, checks the
// message in memory and returns it as it is to be stored (whole is true):
// one file written once, where a larger message is written, checked, and
// rewritten when its header is edited. Otherwise it returns header and
// body unchanged for that.
func checkSmall(header []byte, body io.Reader, check Check, buf []byte) (_ []byte, _ io.Reader, folder string, whole bool, err error) {
	n := copy(buf, header)
	if n < len(header) {
		return header, body, "", false, nil
	}
	m, err := io.ReadFull(body, buf[n:])
	msg := buf[:n+m]
	switch {
	case err == nil:
		return header, io.MultiReader(bytes.NewReader(msg[n:]), body), "", false, nil
	case !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF):
		return nil, nil, "", false, err
	}
	v, err := check(bytes.NewReader(msg), int64(len(msg)))
	if err != nil {
		return nil, nil, "", false, err
	}
	if v.Edit == nil {
		return nil, bytes.NewReader(msg), v.Folder, true, nil
	}
	raw, _, _, err := msgheader.Read(bufio.NewReader(bytes.NewReader(msg)))
	if err != nil {
		return nil, nil, "", false, fmt.Errorf("read the header to edit: %w", err)
	}
	return v.Edit(raw), bytes.NewReader(msg[len(raw):]), v.Folder, true, nil
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
	name string   // the name the next file is given (see unique)
	tmps []string // created under tmp/, one per mailbox in order
	news []string // renamed into new/
}

// attempts bounds the names unique tries for one file. Only a host that
// shares this Maildir, its hostname, its PID and its random part can take
// a name first, so a second attempt is already a rare event.
const attempts = 8

// unique runs step with the delivery's name and, while step fails because
// a file of that name exists (made by another host sharing the Maildir),
// with new ones: step must create or rename without ever replacing. The
// name that worked stays the delivery's, for the next copies.
func (d *delivery) unique(s *Store, step func(name string) error) error {
	err := step(d.name)
	for i := 1; i < attempts && errors.Is(err, fs.ErrExist); i++ {
		d.name = s.names.next(s.host)
		err = step(d.name)
	}
	return err
}

// retry runs step, which must not have consumed anything when it fails, and
// once more after creating the Maildir of mailbox (and folder) if it failed
// for want of a directory: on the first delivery to mailbox, or when its
// Maildir was removed while the server runs.
func (s *Store) retry(mailbox, folder string, step func() error) error {
	err := step()
	if errors.Is(err, fs.ErrNotExist) {
		if err := s.prepare(mailbox, folder); err != nil {
			return err
		}
		err = step()
	}
	return err
}

func (d *delivery) run(s *Store, boxes []string, folder string, header []byte, body io.Reader, check Check) error {
	var first string
	var f *os.File
	create := func(name string) (err error) {
		first = filepath.Join(s.dir(boxes[0], folder, "tmp"), name)
		f, err = d.create(first)
		return err
	}
	if err := s.retry(boxes[0], folder, func() error { return d.unique(s, create) }); err != nil {
		return err
	}
	n, err := durable.Fill(f, header, body)
	if err == nil && check != nil {
		first, f, folder, err = d.check(s, boxes[0], first, f, n, check)
	}
	// Durable before its rename into new/; that also covers the hard links
	// made to it below: they share the inode.
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
		link := func(name string) error { return d.link(s.sync, first, filepath.Join(s.dir(m, folder, "tmp"), name)) }
		if err := s.retry(m, folder, func() error { return d.unique(s, link) }); err != nil {
			return err
		}
	}
	for i, m := range boxes {
		move := func(name string) error {
			final := filepath.Join(s.dir(m, folder, "new"), name)
			if err := durable.RenameNoReplace(d.tmps[i], final); err != nil {
				return err
			}
			d.news = append(d.news, final)
			return nil
		}
		if err := s.retry(m, folder, func() error { return d.unique(s, move) }); err != nil {
			return fmt.Errorf("maildir: %w", err)
		}
	}
	// Each new/ is synced concurrently: with many local recipients the
	// syncs would otherwise add up (with sync = "filesystem" those of one
	// filesystem are one anyway).
	errs := make([]error, len(boxes))
	var wg sync.WaitGroup
	for i, m := range boxes {
		wg.Go(func() { errs[i] = s.sync.Names(s.dir(m, folder, "new")) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("maildir: %w", err)
	}
	return nil
}

// check runs check on the first copy, f at path, of size bytes, and
// returns the file that goes on: f, or a new one in the folder's tmp/ when
// the header is edited, written with the edited header followed by the
// rest of f copied in the kernel (copy_file_range). The check reads f
// before it is synced: a refused message costs no sync.
func (d *delivery) check(s *Store, mailbox, path string, f *os.File, size int64, check Check) (string, *os.File, string, error) {
	r, err := os.Open(path)
	if err != nil {
		return path, f, "", fmt.Errorf("reopen for the check: %w", err)
	}
	defer r.Close()
	v, err := check(r, size)
	if err != nil || v.Edit == nil {
		return path, f, v.Folder, err
	}
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return path, f, "", err
	}
	br := bufio.NewReader(io.LimitReader(r, maxEdited))
	raw, _, _, err := msgheader.Read(br)
	if err != nil {
		return path, f, "", fmt.Errorf("read the header to edit: %w", err)
	}
	if int64(len(raw)) >= maxEdited {
		return path, f, "", fmt.Errorf("header section over %d bytes, not edited", maxEdited)
	}
	// The edited copy gets a name of its own: it may share tmp/ with f.
	d.name = s.names.next(s.host)
	var edited string
	var out *os.File
	create := func(name string) (err error) {
		edited = filepath.Join(s.dir(mailbox, v.Folder, "tmp"), name)
		out, err = d.create(edited)
		return err
	}
	if err := s.retry(mailbox, v.Folder, func() error { return d.unique(s, create) }); err != nil {
		return path, f, "", err
	}
	f.Close()
	os.Remove(path)
	d.tmps = d.tmps[1:]
	if _, err := r.Seek(int64(len(raw)), io.SeekStart); err != nil {
		return edited, out, "", err
	}
	if _, err := out.Write(v.Edit(raw)); err != nil {
		return edited, out, "", err
	}
	// File to file: io.Copy lets the kernel copy the body.
	_, err = io.Copy(out, r)
	return edited, out, v.Folder, err
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
// linking fails (another filesystem, no hard links, link limit reached). A
// taken name is reported as such (see unique), never copied over.
func (d *delivery) link(sync durable.Mode, src, dst string) error {
	err := os.Link(src, dst)
	if err == nil {
		d.tmps = append(d.tmps, dst)
		return nil
	}
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("maildir: %w", err)
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
