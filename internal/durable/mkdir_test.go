package durable

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
)

func TestMkdirAll(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "alice", "Maildir", "new")
	if err := MkdirAll(dir); err != nil {
		t.Fatal(err)
	}
	for d := dir; d != root; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if mode := fi.Mode().Perm(); mode != 0o700 {
			t.Errorf("%s: mode %v, want 0700", d, mode)
		}
	}
	if err := MkdirAll(dir); err != nil {
		t.Errorf("second MkdirAll: %v", err)
	}
}

func TestMkdirAllConcurrent(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b", "c")
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Go(func() { errs <- MkdirAll(dir) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestMkdirAllOverFile(t *testing.T) {
	root := t.TempDir()
	file := filepath.Join(root, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := MkdirAll(file); err == nil {
		t.Error("MkdirAll over a file succeeded")
	}
	if err := MkdirAll(filepath.Join(file, "sub")); err == nil {
		t.Error("MkdirAll under a file succeeded")
	}
}
