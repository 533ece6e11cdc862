package queue

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"facteur/internal/durable"
)

// spool is the queue on disk: for each message <id>.msg (the bytes to send)
// and <id>.env (its Envelope), both in one directory so that one directory
// fsync makes a new message durable. Temporary files start with ".tmp-";
// files that are not ours go to corrupt/.
type spool struct {
	dir string
}

const (
	msgExt  = ".msg"
	envExt  = ".env"
	tmpPref = ".tmp-"
)

func (s *spool) msgPath(id string) string { return filepath.Join(s.dir, id+msgExt) }
func (s *spool) envPath(id string) string { return filepath.Join(s.dir, id+envExt) }

// store writes a new message and its envelope, and returns once both are
// durable. The message file is renamed into place before the envelope: an
// envelope never points at a missing message, and a message without an
// envelope is a leftover of a crash before the client got its 250.
func (s *spool) store(env *Envelope, header []byte, body io.Reader) (err error) {
	var tmps []string
	defer func() {
		if err != nil {
			for _, t := range tmps {
				os.Remove(t)
			}
		}
	}()
	mf, err := os.CreateTemp(s.dir, tmpPref+"*")
	if err != nil {
		return fmt.Errorf("queue: create message file: %w", err)
	}
	tmps = append(tmps, mf.Name())
	n, err := durable.Fill(mf, header, body)
	if cerr := mf.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("queue: store message %s: %w", env.ID, err)
	}
	env.Size = n
	data, err := env.marshal()
	if err != nil {
		return err
	}
	ef, err := os.CreateTemp(s.dir, tmpPref+"*")
	if err != nil {
		return fmt.Errorf("queue: create envelope file: %w", err)
	}
	tmps = append(tmps, ef.Name())
	_, err = ef.Write(data)
	if err == nil {
		err = ef.Sync()
	}
	if cerr := ef.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("queue: store envelope %s: %w", env.ID, err)
	}
	// A link, unlike a rename, never replaces a message already queued
	// under the same id: NewID has only 24 random bits per microsecond.
	if err := os.Link(mf.Name(), s.msgPath(env.ID)); err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	os.Remove(tmps[0])
	tmps[0] = s.msgPath(env.ID)
	if err := os.Rename(ef.Name(), s.envPath(env.ID)); err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	tmps[1] = s.envPath(env.ID)
	if err := durable.SyncDir(s.dir); err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	return nil
}

// update rewrites an envelope atomically.
func (s *spool) update(data []byte, id string) error {
	if err := durable.WriteFile(s.envPath(id), data); err != nil {
		return fmt.Errorf("queue: update %s: %w", id, err)
	}
	return nil
}

// remove deletes a finished message, envelope first so that a crash in
// between leaves an orphan message file (cleaned at start) rather than an
// envelope without its message. No directory fsync: if the removal is lost
// in a power cut the message is delivered again, which at-least-once allows.
func (s *spool) remove(id string) error {
	if err := os.Remove(s.envPath(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("queue: remove %s: %w", id, err)
	}
	if err := os.Remove(s.msgPath(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("queue: remove %s: %w", id, err)
	}
	return nil
}

func (s *spool) open(id string) (io.ReadCloser, error) {
	f, err := os.Open(s.msgPath(id))
	if err != nil {
		return nil, fmt.Errorf("queue: open %s: %w", id, err)
	}
	return f, nil
}

// scan reads the whole spool at start-up. It deletes temporary files and
// message files without an envelope (a crash before the 250), and moves
// anything it cannot read or does not know into corrupt/, so one bad file
// never stops the rest of the mail.
func (s *spool) scan(log *slog.Logger) ([]*Envelope, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("queue: scan %s: %w", s.dir, err)
	}
	names := make(map[string]bool, len(ents))
	for _, de := range ents {
		names[de.Name()] = true
	}
	var envs []*Envelope
	for _, de := range ents {
		name := de.Name()
		id, ext := strings.TrimSuffix(name, filepath.Ext(name)), filepath.Ext(name)
		switch {
		case de.IsDir():
			continue
		case strings.HasPrefix(name, tmpPref):
			log.Info("queue: removing temporary file left by a crash", "file", name)
			os.Remove(filepath.Join(s.dir, name))
		case ext == msgExt && validID(id):
			if !names[id+envExt] {
				log.Info("queue: removing message never acknowledged (no envelope)", "id", id)
				os.Remove(filepath.Join(s.dir, name))
			}
		case ext == envExt && validID(id):
			env, err := s.load(id, names[id+msgExt])
			if err != nil {
				log.Error("queue: corrupt envelope moved aside", "id", id, "err", err)
				s.moveAside(id+envExt, id+msgExt)
				continue
			}
			envs = append(envs, env)
		default:
			log.Error("queue: foreign file moved aside", "file", name)
			s.moveAside(name)
		}
	}
	return envs, nil
}

func (s *spool) load(id string, hasMsg bool) (*Envelope, error) {
	if !hasMsg {
		return nil, errors.New("message file missing")
	}
	b, err := os.ReadFile(s.envPath(id))
	if err != nil {
		return nil, err
	}
	return parseEnvelope(b, id)
}

func (s *spool) moveAside(names ...string) {
	dir := filepath.Join(s.dir, "corrupt")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return
	}
	for _, n := range names {
		os.Rename(filepath.Join(s.dir, n), filepath.Join(dir, n))
	}
}

// readEnvelopes reads every readable envelope without touching anything.
func readEnvelopes(s *spool) ([]Envelope, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("queue: read %s: %w", s.dir, err)
	}
	var out []Envelope
	for _, de := range ents {
		id, ok := strings.CutSuffix(de.Name(), envExt)
		if !ok || !validID(id) {
			continue
		}
		if env, err := s.load(id, true); err == nil {
			out = append(out, *env)
		}
	}
	return out, nil
}
