package maildir

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"facteur/internal/durable"
)

// twin is a Store of another process writing into root: same hostname,
// PID 1 as in a container, the same random part (the 2^-64 draw forced)
// and a clock that stands still, so its names are those of any other twin
// and only its own counter moves.
func twin(root string) *Store {
	s := New(root, "mx", durable.Filesystem)
	s.names = &namer{now: func() time.Time { return time.Unix(1700000000, 123456000) }, pid: 1, random: "0123456789abcdef"}
	return s
}

// name is the n-th name of a twin.
func name(n int) string {
	return "1700000000.M123456P1R0123456789abcdefQ" + strconv.Itoa(n) + ".mx"
}

func read(t *testing.T, root, mailbox, sub, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, mailbox, "Maildir", sub, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Two processes that make the same name: the second delivery never
// replaces the first, it takes the next name.
func TestNameTakenInNew(t *testing.T) {
	root := t.TempDir()
	a, b := twin(root), twin(root)
	first, err := a.Deliver([]string{"alice"}, nil, strings.NewReader("first\r\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	second, err := b.Deliver([]string{"alice"}, nil, strings.NewReader("second\r\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if first[0] != name(1) || second[0] != name(2) {
		t.Fatalf("names %v and %v, want %s and %s", first, second, name(1), name(2))
	}
	if got := read(t, root, "alice", "new", name(1)); got != "first\r\n" {
		t.Errorf("first message replaced: %q", got)
	}
	if got := read(t, root, "alice", "new", name(2)); got != "second\r\n" {
		t.Errorf("second message holds %q", got)
	}
	if tmp := list(t, root, "alice", "tmp"); len(tmp) != 0 {
		t.Errorf("tmp/ holds %v", tmp)
	}
}

// The name is taken in tmp/ by a delivery in progress elsewhere, or in one
// mailbox's new/ only: the file already there is left alone, each copy
// lands under a free name.
func TestNameTakenInOneMailbox(t *testing.T) {
	for _, where := range []string{"alice/Maildir/tmp", "bob/Maildir/tmp", "bob/Maildir/new"} {
		t.Run(where, func(t *testing.T) {
			root := t.TempDir()
			s := twin(root)
			if err := s.prepare("alice", ""); err != nil {
				t.Fatal(err)
			}
			if err := s.prepare("bob", ""); err != nil {
				t.Fatal(err)
			}
			theirs := filepath.Join(root, where, name(1))
			if err := os.WriteFile(theirs, []byte("theirs"), 0o600); err != nil {
				t.Fatal(err)
			}
			names, err := s.Deliver([]string{"alice", "bob"}, nil, strings.NewReader("ours\r\n"), nil)
			if err != nil {
				t.Fatal(err)
			}
			for i, m := range []string{"alice", "bob"} {
				if got := read(t, root, m, "new", names[i]); got != "ours\r\n" {
					t.Errorf("%s got %q under %s", m, got, names[i])
				}
			}
			if got, err := os.ReadFile(theirs); string(got) != "theirs" {
				t.Errorf("the other host's file: %q, %v", got, err)
			}
			if strings.HasSuffix(where, "new") && (names[0] != name(1) || names[1] != name(2)) {
				t.Errorf("names %v, want alice's to stay %s and bob's to move on", names, name(1))
			}
		})
	}
}

// The search for a free name is bounded: with every name taken the
// delivery fails, leaves nothing of its own and touches nothing else.
func TestNamesAllTaken(t *testing.T) {
	root := t.TempDir()
	s := twin(root)
	if err := s.prepare("alice", ""); err != nil {
		t.Fatal(err)
	}
	for n := 1; n <= attempts; n++ {
		if err := os.WriteFile(filepath.Join(root, "alice", "Maildir", "new", name(n)), []byte("theirs"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	_, err := s.Deliver([]string{"alice"}, nil, strings.NewReader("ours\r\n"), nil)
	if !errors.Is(err, fs.ErrExist) {
		t.Fatalf("delivery with every name taken: %v, want ErrExist", err)
	}
	if tmp := list(t, root, "alice", "tmp"); len(tmp) != 0 {
		t.Errorf("tmp/ holds %v", tmp)
	}
	for n := 1; n <= attempts; n++ {
		if got := read(t, root, "alice", "new", name(n)); got != "theirs" {
			t.Errorf("%s replaced: %q", name(n), got)
		}
	}
}

// The random part is the process's own: drawn once, 64 bits.
func TestProcessRandom(t *testing.T) {
	if len(process.random) != 16 || process.random == strings.Repeat("0", 16) {
		t.Errorf("process random part %q", process.random)
	}
	if a, b := randomHex(), randomHex(); a == b {
		t.Errorf("two draws gave %s", a)
	}
}
