// Package logging is facteur's log: slog text lines to standard error or to
// a file, whose level and file a running server can change. logrotate moves
// the file away and then asks for a reload, so a reload opens the file
// again by its name.
package logging

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"

	"facteur/internal/config"
)

// Log is the server's logger and what a reload can change of it.
type Log struct {
	*slog.Logger
	level  slog.LevelVar
	stderr io.Writer

	mu   sync.Mutex
	w    io.Writer // stderr or file
	file *os.File  // nil when logging to stderr
}

// Open logs to the file path, appending, or to stderr when path is empty,
// at the level named (see config.ParseLevel).
func Open(path, level string, stderr io.Writer) (*Log, error) {
	l := &Log{stderr: stderr, w: stderr}
	if err := l.Apply(path, level); err != nil {
		return nil, err
	}
	l.Logger = slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: &l.level}))
	return l, nil
}

// Apply sets the level and (re)opens the file, even when its name is the
// same: after logrotate that name is a new file. On error nothing changes.
func (l *Log) Apply(path, level string) error {
	lvl, err := config.ParseLevel(level)
	if err != nil {
		return fmt.Errorf("log.level: %w", err)
	}
	var f *os.File
	if path != "" {
		if f, err = os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600); err != nil {
			return fmt.Errorf("log.file: %w", err)
		}
	}
	l.level.Set(lvl)
	l.mu.Lock()
	old := l.file
	l.file, l.w = f, l.stderr
	if f != nil {
		l.w = f
	}
	l.mu.Unlock()
	if old != nil {
		old.Close()
	}
	return nil
}

// Write is the handler's output; the handler writes one line per call.
func (l *Log) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// Close closes the file, if any; later lines go to stderr.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.w = l.stderr
	if l.file == nil {
		return nil
	}
	err := l.file.Close()
	l.file = nil
	return err
}
