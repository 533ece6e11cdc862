// Package maildrop is where `facteur sendmail` leaves a message when the
// server is not running, and where the server picks it up when it starts:
// nothing handed to sendmail is lost because the daemon was down.
//
// A drop file is one JSON line (sender and recipients) followed by the
// message. It is written durably under a temporary name and renamed, so
// the server never reads half a file.
package maildrop

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"facteur/internal/durable"
)

// Envelope is who a dropped message is from and for.
type Envelope struct {
	From  string   `json:"from"`
	Rcpts []string `json:"rcpts"`
}

// Drop stores msg for env in dir (created if need be) and returns the
// file's name.
func Drop(dir string, env Envelope, msg []byte) (string, error) {
	if len(env.Rcpts) == 0 {
		return "", errors.New("maildrop: no recipients")
	}
	if err := durable.MkdirAll(dir); err != nil {
		return "", fmt.Errorf("maildrop: %w", err)
	}
	head, err := json.Marshal(env)
	if err != nil {
		return "", fmt.Errorf("maildrop: %w", err)
	}
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return "", fmt.Errorf("maildrop: %w", err)
	}
	giveToDirOwner(f, dir)
	if _, err := durable.Fill(f, append(head, '\n'), bytes.NewReader(msg)); err != nil {
		f.Close()
		os.Remove(f.Name())
		return "", fmt.Errorf("maildrop: write: %w", err)
	}
	final := filepath.Join(dir, strings.TrimPrefix(filepath.Base(f.Name()), ".tmp-")+".drop")
	if err := durable.Commit(f, final); err != nil {
		return "", fmt.Errorf("maildrop: %w", err)
	}
	return final, nil
}

// Submit takes one dropped message; the server queues it. The body must be
// read before Submit returns.
type Submit func(env Envelope, body io.Reader) error

// Pickup hands every complete drop file in dir to submit and removes it
// once submit succeeded. A file that cannot be read as a drop file is
// moved into dir/corrupt. It returns how many messages it took.
func Pickup(dir string, submit Submit, log *slog.Logger) (int, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("maildrop: %w", err)
	}
	n := 0
	for _, de := range ents {
		if de.IsDir() || !strings.HasSuffix(de.Name(), ".drop") {
			continue
		}
		path := filepath.Join(dir, de.Name())
		err := take(path, submit)
		var bad *badFile
		switch {
		case errors.As(err, &bad):
			log.Error("maildrop: unreadable file moved aside", "file", path, "err", err)
			os.MkdirAll(filepath.Join(dir, "corrupt"), 0o700)
			os.Rename(path, filepath.Join(dir, "corrupt", de.Name()))
		case err != nil:
			return n, fmt.Errorf("maildrop: %s: %w", path, err)
		default:
			n++
			os.Remove(path)
		}
	}
	return n, nil
}

type badFile struct{ err error }

func (b *badFile) Error() string { return b.err.Error() }

func take(path string, submit Submit) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	r := bufio.NewReader(f)
	line, err := r.ReadBytes('\n')
	if err != nil {
		return &badFile{fmt.Errorf("no envelope line: %w", err)}
	}
	var env Envelope
	if err := json.Unmarshal(line, &env); err != nil || len(env.Rcpts) == 0 {
		return &badFile{fmt.Errorf("bad envelope line: %v", err)}
	}
	return submit(env, r)
}

// giveToDirOwner hands a file root makes (sendmail run by cron as root) to
// the owner of the drop directory, the server's user, which must read and
// remove it.
func giveToDirOwner(f *os.File, dir string) {
	if os.Geteuid() != 0 {
		return
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		f.Chown(int(st.Uid), int(st.Gid))
	}
}
