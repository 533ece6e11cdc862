package maildir

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"facteur/internal/durable"
)

// A check sees the whole message, as stored, before it is made durable; its
// verdict picks the folder and edits the header, the body copied as is:
// the same for a message checked in memory (up to 64 KiB) and for one
// checked in its file, and for the two either side of the buffer's end.
func TestDeliverChecked(t *testing.T) {
	exact := (64<<10 - len(header) - 32) / 11
	for _, m := range []durable.Mode{durable.Filesystem, durable.File} {
		for _, lines := range []int{10, exact, exact + 1, 10000} {
			t.Run(fmt.Sprintf("%s/%d", m, lines), func(t *testing.T) { testDeliverChecked(t, m, lines) })
		}
	}
}

func testDeliverChecked(t *testing.T, m durable.Mode, lines int) {
	root := t.TempDir()
	s := New(root, "mx.example.test", m)
	body := "Subject: hi\r\nX-Spam: forged\r\n\r\n" + strings.Repeat("body line\r\n", lines)
	var seen string
	var seenSize int64
	check := func(msg io.Reader, size int64) (Verdict, error) {
		b, err := io.ReadAll(msg)
		seen, seenSize = string(b), size
		return Verdict{Folder: Junk, Edit: func(h []byte) []byte {
			return []byte("X-Spam: Yes\r\n" + strings.Replace(string(h), "X-Spam: forged\r\n", "", 1))
		}}, err
	}
	names, err := s.Deliver([]string{"alice", "bob"}, []byte(header), strings.NewReader(body), check)
	if err != nil {
		t.Fatal(err)
	}
	if seen != header+body || seenSize != int64(len(seen)) {
		t.Errorf("the check saw %d bytes (size %d), want the %d of the message", len(seen), seenSize, len(header+body))
	}
	want := "X-Spam: Yes\r\n" + header + strings.Replace(body, "X-Spam: forged\r\n", "", 1)
	for _, mb := range []string{"alice", "bob"} {
		got, err := os.ReadFile(filepath.Join(root, mb, "Maildir", Junk, "new", names[0]))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != want {
			t.Errorf("%s: stored %q..., want %q...", mb, got[:80], want[:80])
		}
		for _, dir := range []string{"new", "tmp", Junk + "/tmp"} {
			if l := list(t, root, mb, dir); len(l) != 0 {
				t.Errorf("%s: %s holds %v", mb, dir, l)
			}
		}
		if _, err := os.Stat(filepath.Join(root, mb, "Maildir", Junk, "maildirfolder")); err != nil {
			t.Errorf("%s: Junk is not marked as a Maildir++ folder: %v", mb, err)
		}
	}
}

// A refusal stores nothing; a verdict without edits keeps the file written
// during DATA.
func TestDeliverCheckRefusesOrPasses(t *testing.T) {
	root := t.TempDir()
	s := New(root, "mx.example.test", durable.Filesystem)
	no := errors.New("spam")
	_, err := s.Deliver([]string{"alice"}, []byte(header), strings.NewReader("x\r\n"),
		func(io.Reader, int64) (Verdict, error) { return Verdict{}, no })
	if !errors.Is(err, no) {
		t.Fatalf("refused: %v, want the check's error", err)
	}
	for _, dir := range []string{"new", "tmp"} {
		if l := list(t, root, "alice", dir); len(l) != 0 {
			t.Errorf("after a refusal %s holds %v", dir, l)
		}
	}
	names, err := s.Deliver([]string{"alice"}, []byte(header), strings.NewReader("x\r\n"),
		func(io.Reader, int64) (Verdict, error) { return Verdict{}, nil })
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(root, "alice", "Maildir", "new", names[0])); string(got) != header+"x\r\n" {
		t.Errorf("stored %q", got)
	}
}
