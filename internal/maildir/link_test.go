package maildir

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"facteur/internal/durable"
)

// A mailbox on another filesystem cannot get a hard link; it must get a copy.
func TestDeliverCopiesAcrossFilesystems(t *testing.T) {
	root := t.TempDir()
	other, err := os.MkdirTemp("/dev/shm", "facteur-maildir-")
	if err != nil {
		t.Skipf("no second filesystem: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(other) })
	var a, b syscall.Stat_t
	if syscall.Stat(root, &a) != nil || syscall.Stat(other, &b) != nil || a.Dev == b.Dev {
		t.Skip("/dev/shm is on the same filesystem as the test directory")
	}
	if err := os.Symlink(other, filepath.Join(root, "bob")); err != nil {
		t.Fatal(err)
	}

	body := "Subject: x\r\n\r\nhello\r\n"
	names, err := New(root, "h", durable.Filesystem).Deliver([]string{"alice", "bob"}, []byte(header), strings.NewReader(body), nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(other, "Maildir", "new", names[1]))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != header+body {
		t.Errorf("copy holds %q, want %q", got, header+body)
	}
	if tmp := list(t, root, "bob", "tmp"); len(tmp) != 0 {
		t.Errorf("bob/tmp not empty: %v", tmp)
	}
}
