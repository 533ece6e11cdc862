package logging

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// What logrotate does: move the file away, then ask for a reload.
func TestApplyReopensARotatedFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "facteur.log")
	var stderr bytes.Buffer
	l, err := Open(path, "info", &stderr)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.Info("before rotation")
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	l.Info("still to the old file")
	if err := l.Apply(path, "info"); err != nil {
		t.Fatal(err)
	}
	l.Info("after rotation")
	old, cur := read(t, path+".1"), read(t, path)
	if !strings.Contains(old, "before rotation") || !strings.Contains(old, "still to the old file") || strings.Contains(old, "after rotation") {
		t.Errorf("rotated file holds:\n%s", old)
	}
	if !strings.Contains(cur, "after rotation") || strings.Contains(cur, "before rotation") {
		t.Errorf("new file holds:\n%s", cur)
	}
	if stderr.Len() != 0 {
		t.Errorf("lines went to stderr: %s", stderr.String())
	}
}

func TestApplyChangesLevelAndDestination(t *testing.T) {
	var stderr bytes.Buffer
	l, err := Open("", "warn", &stderr)
	if err != nil {
		t.Fatal(err)
	}
	l.Info("hidden at warn")
	l.Warn("shown at warn")
	path := filepath.Join(t.TempDir(), "f.log")
	if err := l.Apply(path, "debug"); err != nil {
		t.Fatal(err)
	}
	l.Debug("shown at debug")
	// A bad level or an unwritable file changes nothing.
	if err := l.Apply(path, "loud"); err == nil {
		t.Error("level \"loud\" accepted")
	}
	if err := l.Apply(filepath.Join(path, "not-a-dir", "x.log"), "error"); err == nil {
		t.Error("a file that cannot be opened accepted")
	}
	l.Debug("still at debug, still in the file")
	if err := l.Apply("", "info"); err != nil {
		t.Fatal(err)
	}
	l.Info("back on stderr")
	if s := stderr.String(); strings.Contains(s, "hidden") || !strings.Contains(s, "shown at warn") ||
		!strings.Contains(s, "back on stderr") || strings.Contains(s, "debug") {
		t.Errorf("stderr holds:\n%s", s)
	}
	if s := read(t, path); !strings.Contains(s, "shown at debug") || !strings.Contains(s, "still at debug, still in the file") {
		t.Errorf("file holds:\n%s", s)
	}
}
