package queue

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

// A delivered message's file holds the next message: longer or shorter,
// the new one is stored exactly, and is delivered as it was stored.
func TestSpentFileReused(t *testing.T) {
	dir := t.TempDir()
	tr := newFake()
	q := openQueue(t, testConfig(dir, tr))
	run(t, q)
	enqueue(t, q, "alice@sender.test", "bob@dest.test")
	waitFor(t, "the spool to empty", emptySpool(t, dir))
	spares := spareFiles(t, dir)
	if len(spares) != 1 {
		t.Fatalf("spares after one delivery: %v, want 1", spares)
	}
	ino := inode(t, spares[0])

	for _, body := range []string{
		"Subject: long\r\n\r\n" + strings.Repeat("a long line of text\r\n", 500),
		"Subject: short\r\n\r\nx\r\n",
	} {
		id := NewID()
		header := []byte("Received: test\r\n")
		if err := q.Enqueue(Message{Origin: FromRelay, ID: id, From: "a@sender.test", Rcpts: []string{"c@dest.test"}}, header, strings.NewReader(body), nil); err != nil {
			t.Fatal(err)
		}
		want := append(header, body...)
		waitFor(t, "the delivery of "+id, func() bool { return tr.deliveries()[id] == 1 })
		calls := tr.callList()
		if got := calls[len(calls)-1].data[0]; !bytes.Equal(got, want) {
			t.Errorf("delivered %d bytes, want the %d stored", len(got), len(want))
		}
		waitFor(t, "the spool to empty", emptySpool(t, dir))
		spares := spareFiles(t, dir)
		if len(spares) != 1 || inode(t, spares[0]) != ino {
			t.Fatalf("spares %v: want the same file again", spares)
		}
		// Cut to the envelope line and the last message: after a restart
		// the size of a message is that of its file.
		content := mustRead(t, spares[0])
		if !bytes.HasSuffix(content, want) || bytes.Count(content[:len(content)-len(want)], []byte("\n")) != 1 {
			t.Errorf("spare holds %d bytes, want one envelope line and the %d of the last message", len(content), len(want))
		}
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Spares outlive a restart without being taken for messages; what the
// operator removes is deleted, not kept; a big message's file is deleted.
func TestSparesRestartRemoveAndSize(t *testing.T) {
	dir := t.TempDir()
	// A spare left by a previous run: old bytes that look like a message.
	old := filepath.Join(dir, sparePref+"06H01FP8AYNGG6C8")
	if err := os.WriteFile(old, []byte(`{"id":"06H01FP8AYNGG6C8","rcpts":[{"addr":"x@y.test"}]}`+"\nold\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tr := newFake()
	q := openQueue(t, testConfig(dir, tr))
	if l := q.List(); len(l) != 0 {
		t.Errorf("List after start-up = %+v: a spare was taken for a message", l)
	}
	loadAll(q) // adopts the spare
	if exists(filepath.Join(dir, "corrupt")) {
		t.Error("a spare was moved to corrupt/")
	}
	removed, _ := enqueue(t, q, "alice@sender.test", "bob@dest.test") // takes the spare
	if got := spareFiles(t, dir); len(got) != 0 {
		t.Errorf("spares after an enqueue: %v, want the one taken", got)
	}
	if err := q.Remove(removed); err != nil {
		t.Fatal(err)
	}
	if got := spareFiles(t, dir); len(got) != 0 {
		t.Errorf("spares after the operator's removal: %v, want none", got)
	}

	run(t, q)
	big := NewID()
	body := strings.NewReader("Subject: big\r\n\r\n" + strings.Repeat("x", maxSpareSize))
	if err := q.Enqueue(Message{Origin: FromRelay, ID: big, From: "a@sender.test", Rcpts: []string{"c@dest.test"}}, nil, body, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the spool to empty", emptySpool(t, dir))
	if got := spareFiles(t, dir); len(got) != 0 {
		t.Errorf("spares after a big message: %v, want none", got)
	}
	if d := tr.deliveries(); d[removed] != 0 || d[big] != 1 {
		t.Errorf("deliveries = %v", d)
	}
}
