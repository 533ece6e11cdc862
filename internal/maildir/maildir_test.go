package maildir

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"facteur/internal/durable"
)

const header = "Return-Path: <a@example.test>\r\nReceived: from x by y; Mon, 1 Jan 2024 00:00:00 +0000\r\n"

// list returns the names in <root>/<mailbox>/Maildir/<sub>, none if missing.
func list(t *testing.T, root, mailbox, sub string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(root, mailbox, "Maildir", sub))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// Either way of syncing stores the same file, complete, in new/.
func TestDeliverContent(t *testing.T) {
	for _, m := range []durable.Mode{durable.Filesystem, durable.File} {
		t.Run(m.String(), func(t *testing.T) { testDeliverContent(t, m) })
	}
}

func testDeliverContent(t *testing.T, m durable.Mode) {
	root := t.TempDir()
	s := New(root, "mx.example.test", m)
	body := "Subject: hi\r\n\r\nhello\r\n"
	names, err := s.Deliver([]string{"alice"}, []byte(header), strings.NewReader(body), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 1 {
		t.Fatalf("names %v, want one", names)
	}
	path := filepath.Join(root, "alice", "Maildir", "new", names[0])
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != header+body {
		t.Errorf("stored %q, want %q", got, header+body)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if mode := fi.Mode().Perm(); mode != 0o600 {
		t.Errorf("file mode %v, want 0600", mode)
	}
	for _, sub := range []string{"tmp", "cur"} {
		fi, err := os.Stat(filepath.Join(root, "alice", "Maildir", sub))
		if err != nil {
			t.Fatal(err)
		}
		if mode := fi.Mode().Perm(); mode != 0o700 {
			t.Errorf("%s mode %v, want 0700", sub, mode)
		}
	}
	if tmp := list(t, root, "alice", "tmp"); len(tmp) != 0 {
		t.Errorf("tmp/ not empty: %v", tmp)
	}
}

// A body larger than the write buffer goes through several writes.
func TestDeliverLargeBody(t *testing.T) {
	root := t.TempDir()
	body := bytes.Repeat([]byte("0123456789abcdef\r\n"), 20000)
	names, err := New(root, "h", durable.Filesystem).Deliver([]string{"alice"}, []byte(header), bytes.NewReader(body), nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(root, "alice", "Maildir", "new", names[0]))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, append([]byte(header), body...)) {
		t.Errorf("stored %d bytes, want %d", len(got), len(header)+len(body))
	}
}

func TestDeliverSeveralMailboxes(t *testing.T) {
	root := t.TempDir()
	boxes := []string{"alice", "bob", "carol", "bob"}
	names, err := New(root, "h", durable.Filesystem).Deliver(boxes, []byte(header), strings.NewReader("body\r\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 3 {
		t.Fatalf("names %v, want 3 (duplicate delivered once)", names)
	}
	for i, m := range []string{"alice", "bob", "carol"} {
		if got := list(t, root, m, "new"); len(got) != 1 || got[0] != names[i] {
			t.Errorf("%s/new holds %v, want [%s]", m, got, names[i])
		}
		got, err := os.ReadFile(filepath.Join(root, m, "Maildir", "new", names[i]))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != header+"body\r\n" {
			t.Errorf("%s got %q", m, got)
		}
		if tmp := list(t, root, m, "tmp"); len(tmp) != 0 {
			t.Errorf("%s/tmp not empty: %v", m, tmp)
		}
	}
}

var errBareLF = errors.New("bare LF in body")

// failingReader returns some data and then an error, like the SMTP layer's
// reader when it meets a bare LF or the size limit.
type failingReader struct{ sent bool }

func (r *failingReader) Read(p []byte) (int, error) {
	if r.sent {
		return 0, errBareLF
	}
	r.sent = true
	return copy(p, "partial body\r\n"), nil
}

func TestDeliverBodyError(t *testing.T) {
	root := t.TempDir()
	boxes := []string{"alice", "bob"}
	_, err := New(root, "h", durable.Filesystem).Deliver(boxes, []byte(header), &failingReader{}, nil)
	if !errors.Is(err, errBareLF) {
		t.Fatalf("error %v does not wrap the reader's", err)
	}
	for _, m := range boxes {
		for _, sub := range []string{"tmp", "new", "cur"} {
			if got := list(t, root, m, sub); len(got) != 0 {
				t.Errorf("%s/%s holds %v after a failed delivery", m, sub, got)
			}
		}
	}
}

func TestDeliverInvalidMailbox(t *testing.T) {
	parent := t.TempDir()
	root := filepath.Join(parent, "root")
	s := New(root, "h", durable.Filesystem)
	for _, m := range []string{"../x", "a/b", ".", "..", "", "a\x00b", "a\nb", ".hidden", strings.Repeat("a", 65)} {
		// A valid mailbox next to the bad one must not be delivered either.
		_, err := s.Deliver([]string{"alice", m}, []byte(header), strings.NewReader("x"), nil)
		if err == nil {
			t.Errorf("mailbox %q accepted", m)
		}
	}
	entries, err := os.ReadDir(parent)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("refused deliveries created %v", entries)
	}
	if _, err := s.Deliver(nil, []byte(header), strings.NewReader("x"), nil); err == nil {
		t.Error("delivery to no mailbox succeeded")
	}
}

func TestValidMailbox(t *testing.T) {
	for name, want := range map[string]bool{
		"alice": true, "a.b": true, "a_b+c-d": true, "A9": true, strings.Repeat("a", 64): true,
		"": false, ".": false, "..": false, ".a": false, "a/b": false, "a b": false,
		"a\x00b": false, "a\nb": false, "a\x7f": false, "é": false, strings.Repeat("a", 65): false,
	} {
		if got := ValidMailbox(name); got != want {
			t.Errorf("ValidMailbox(%q) = %v, want %v", name, got, want)
		}
	}
}

var namePattern = regexp.MustCompile(`^[0-9]+\.M[0-9]+P[0-9]+R[0-9a-f]{16}Q[0-9]+\.mx\.example\.test$`)

func TestDeliverConcurrentNames(t *testing.T) {
	root := t.TempDir()
	// Two Stores on one root: the counter must be shared between them.
	stores := []*Store{New(root, "mx.example.test", durable.Filesystem), New(root, "mx.example.test", durable.Filesystem)}
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for g := range 50 {
		wg.Go(func() {
			for i := range 20 {
				body := strings.NewReader(fmt.Sprintf("message %d/%d\r\n", g, i))
				if _, err := stores[g%2].Deliver([]string{"alice"}, nil, body, nil); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	names := list(t, root, "alice", "new")
	if len(names) != 1000 {
		t.Fatalf("%d files in new/, want 1000", len(names))
	}
	for _, n := range names {
		if !namePattern.MatchString(n) {
			t.Errorf("name %q does not follow the Maildir convention", n)
		}
	}
}

func TestHostnameEscaped(t *testing.T) {
	root := t.TempDir()
	names, err := New(root, "a/b:c", durable.Filesystem).Deliver([]string{"alice"}, nil, strings.NewReader("x"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := `.a\057b\072c`; !strings.HasSuffix(names[0], want) {
		t.Errorf("name %q does not end in %q", names[0], want)
	}
}

func TestCleanTmp(t *testing.T) {
	root := t.TempDir()
	s := New(root, "h", durable.Filesystem)
	if n, err := s.CleanTmp(time.Now()); n != 0 || err != nil {
		t.Fatalf("CleanTmp on an empty root = %d, %v", n, err)
	}
	if _, err := s.Deliver([]string{"alice"}, nil, strings.NewReader("x"), nil); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(root, "alice", "Maildir", "tmp")
	old, fresh := filepath.Join(tmp, "old"), filepath.Join(tmp, "fresh")
	for _, p := range []string{old, fresh} {
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	past := now.Add(-37 * time.Hour)
	if err := os.Chtimes(old, past, past); err != nil {
		t.Fatal(err)
	}
	// A stray file at the top of the root is not a mailbox and is left alone.
	if err := os.WriteFile(filepath.Join(root, "README"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	n, err := s.CleanTmp(now)
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("removed %d files, want 1", n)
	}
	if _, err := os.Stat(old); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("old file still there: %v", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("fresh file removed: %v", err)
	}
	if got := list(t, root, "alice", "new"); len(got) != 1 {
		t.Errorf("new/ holds %v, want the delivered message", got)
	}
}

// BenchmarkDeliver delivers 4 KiB messages from 20 goroutines at once per
// core, as 20 SMTP sessions would, in each way of syncing.
func BenchmarkDeliver(b *testing.B) {
	msg := bytes.Repeat([]byte("x"), 4096-2)
	msg = append(msg, "\r\n"...)
	for _, m := range []durable.Mode{durable.Filesystem, durable.File} {
		b.Run(m.String(), func(b *testing.B) {
			s := New(b.TempDir(), "mx.example.test", m)
			b.SetBytes(int64(len(msg)))
			b.SetParallelism(10)
			b.RunParallel(func(pb *testing.PB) {
				r := bytes.NewReader(msg)
				for pb.Next() {
					r.Reset(msg)
					if _, err := s.Deliver([]string{"alice"}, nil, io.Reader(r), nil); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// A Maildir, or part of one, removed while the server runs comes back at the
// next delivery, which succeeds: whether the first mailbox (written to) or
// another (linked to) lost it, and whether tmp/ or new/ went.
func TestDeliverRecreatesRemovedMaildir(t *testing.T) {
	root := t.TempDir()
	s := New(root, "h", durable.Filesystem)
	boxes := []string{"alice", "bob"}
	if _, err := s.Deliver(boxes, []byte(header), strings.NewReader("first\r\n"), nil); err != nil {
		t.Fatal(err)
	}
	for _, gone := range []string{"alice/Maildir/new", "bob/Maildir", "alice/Maildir/tmp"} {
		if err := os.RemoveAll(filepath.Join(root, gone)); err != nil {
			t.Fatal(err)
		}
		names, err := s.Deliver(boxes, []byte(header), strings.NewReader("after "+gone+"\r\n"), nil)
		if err != nil {
			t.Fatalf("delivery after removing %s: %v", gone, err)
		}
		for i, m := range boxes {
			got, err := os.ReadFile(filepath.Join(root, m, "Maildir", "new", names[i]))
			if err != nil || string(got) != header+"after "+gone+"\r\n" {
				t.Errorf("%s after removing %s: %q, %v", m, gone, got, err)
			}
			for _, sub := range []string{"tmp", "new", "cur"} {
				if fi, err := os.Stat(filepath.Join(root, m, "Maildir", sub)); err != nil || !fi.IsDir() {
					t.Errorf("%s/Maildir/%s after removing %s: %v", m, sub, gone, err)
				}
			}
		}
	}
}
