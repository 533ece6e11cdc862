package maildrop

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

func TestDropThenPickup(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "maildrop")
	env := Envelope{From: "me@host", Rcpts: []string{"a@x", "b@y"}}
	path, err := Drop(dir, env, []byte("Subject: s\r\n\r\nbody\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("drop file: %v %v", fi, err)
	}
	os.WriteFile(filepath.Join(dir, "garbage.drop"), []byte("not json\n"), 0o600)
	os.WriteFile(filepath.Join(dir, ".tmp-half"), []byte("{"), 0o600)

	var got []string
	fail := errors.New("queue full")
	submit := func(e Envelope, body io.Reader) error {
		b, _ := io.ReadAll(body)
		if e.From != env.From || len(e.Rcpts) != 2 {
			t.Errorf("envelope %+v", e)
		}
		got = append(got, string(b))
		return fail
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	// A submit failure keeps the file for the next round.
	if n, err := Pickup(dir, submit, log); n != 0 || !errors.Is(err, fail) {
		t.Fatalf("failing submit: %d %v", n, err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatal("drop file lost after a failed submit")
	}
	fail = nil
	if n, err := Pickup(dir, submit, log); n != 1 || err != nil {
		t.Fatalf("pickup: %d %v", n, err)
	}
	if got[len(got)-1] != "Subject: s\r\n\r\nbody\r\n" {
		t.Errorf("body %q", got[len(got)-1])
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Error("drop file still there after pickup")
	}
	if _, err := os.Stat(filepath.Join(dir, "corrupt", "garbage.drop")); err != nil {
		t.Error("unreadable drop file not moved aside")
	}
	if _, err := os.Stat(filepath.Join(dir, ".tmp-half")); err != nil {
		t.Error("a file still being written was touched")
	}
}
