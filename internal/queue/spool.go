package queue

import (
	"bufio"
	"bytes"
	"crypto/rand"
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

// spool is the queue on disk, one directory so that one directory fsync
// makes a new message durable:
//
//	<id>.msg  one line of JSON, the envelope as enqueued (without its size),
//	          then the message bytes; its rename into place makes the
//	          message live
//	<id>.env  the envelope as of the last attempt, written only once an
//	          attempt left something to do; when present it supersedes the
//	          line in <id>.msg
//	.tmp-*    files being written, removed at start-up
//	.spare-*  spent message files kept for reuse (see spares)
//	corrupt/  what start-up could not read or does not know
//	attempts/ the journal of the retries under way (see attempts)
//
// A message delivered at its first attempt thus costs one file. The size
// of a message is that of <id>.msg less its first line.
//
// The temporary and spare files a process makes are named .tmp-<run>-* and
// .spare-<run>-*, run being a token it draws at random when it opens the
// spool (newRun). That is what lets start-up go through the spool in the
// background while new mail is taken (see scan): whatever carries another
// token, or none (spools of earlier versions), was left by an earlier
// process, and only that is deleted or adopted. Going by age or by what
// the listing saw first would not do: a spare this process made from an
// old message is an old file under a new name, and a listing adopting it
// beside the pool that already holds it would give one file to two
// messages.
//
// Spools written before the envelope line existed hold <id>.msg (the bare
// message) beside <id>.env; they are still read (see load).
type spool struct {
	dir    string
	sync   durable.Mode
	spares *spares // nil: spent files are deleted (the queue command's spool)
	run    string  // this process's token in its temporary and spare names
}

const (
	msgExt  = ".msg"
	envExt  = ".env"
	tmpPref = ".tmp-"
	// cleanName marks a spool whose server stopped cleanly, with no
	// attempt under way: written last by Run, taken first by Open.
	cleanName = ".clean"

	// maxHead bounds the envelope line; Enqueue refuses a longer one so
	// that start-up never meets a line it cannot read.
	maxHead = 1 << 20
)

// newRun draws the token that names a process's temporary and spare files:
// 40 random bits, so that a restarted process, PID 1 in a container again,
// does not draw its predecessor's. It holds no "-", which ends it in the
// names, and the names made before tokens existed (.tmp-<digits>,
// .spare-<id>) hold none after the prefix, so none of them can pass for a
// token's.
func newRun() string {
	var b [5]byte
	rand.Read(b[:])
	return idEncoding.EncodeToString(b[:])
}

// tmpPattern names this process's temporary files, for os.CreateTemp.
func (s *spool) tmpPattern() string { return tmpPref + s.run + "-*" }

// ours tells whether name, a temporary or spare file, was made by this
// process.
func (s *spool) ours(name string) bool {
	rest, ok := strings.CutPrefix(name, tmpPref)
	if !ok {
		rest, ok = strings.CutPrefix(name, sparePref)
	}
	return ok && s.run != "" && strings.HasPrefix(rest, s.run+"-")
}

func (s *spool) msgPath(id string) string { return filepath.Join(s.dir, id+msgExt) }
func (s *spool) envPath(id string) string { return filepath.Join(s.dir, id+envExt) }

// spooled is one message as found on disk.
type spooled struct {
	env    *Envelope
	off    int64 // where the message bytes start in <id>.msg
	hasEnv bool  // <id>.env exists and env comes from it
	badEnv error // <id>.env exists but is unreadable; env is the line's
}

// store writes a new message, its envelope line first, and returns once it
// is durable, with the offset of the message bytes. It sets env.Size.
func (s *spool) store(env *Envelope, header []byte, body io.Reader) (off int64, err error) {
	head, err := env.marshalHead()
	if err != nil {
		return 0, err
	}
	if len(head) > maxHead {
		return 0, fmt.Errorf("queue: envelope of %s too large (%d bytes)", env.ID, len(head))
	}
	f, fill, err := s.create()
	if err != nil {
		return 0, fmt.Errorf("queue: create message file: %w", err)
	}
	tmp, final := f.Name(), ""
	defer func() {
		if err != nil {
			os.Remove(tmp)
			if final != "" {
				os.Remove(final)
			}
		}
	}()
	n, err := fill(f, append(head, header...), body)
	if err == nil {
		// Durable before the rename makes it live: a spare's old bytes
		// must never be read as this message.
		err = s.sync.Content(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, fmt.Errorf("queue: store message %s: %w", env.ID, err)
	}
	// Never replace a message already queued under the same id: the
	// kernel checks it in the same step that makes the message live.
	if err := durable.RenameNoReplace(tmp, s.msgPath(env.ID)); err != nil {
		return 0, fmt.Errorf("queue: %w", err)
	}
	final = s.msgPath(env.ID)
	if err := s.sync.Names(s.dir); err != nil {
		return 0, fmt.Errorf("queue: %w", err)
	}
	env.Size = n - int64(len(head))
	return int64(len(head)), nil
}

// create opens a file for a new message: a spare when there is one, to be
// written over with durable.Refill, else a new temporary file.
func (s *spool) create() (*os.File, func(*os.File, []byte, io.Reader) (int64, error), error) {
	if s.spares != nil {
		if name, ok := s.spares.take(); ok {
			if f, err := durable.OpenFile(name, os.O_WRONLY, 0); err == nil {
				return f, durable.Refill, nil
			}
		}
	}
	f, err := os.CreateTemp(s.dir, s.tmpPattern())
	return f, durable.Fill, err
}

// update writes the envelope that supersedes the line in <id>.msg,
// atomically, with the spool's syncs: the attempts that end at once share
// them as new messages do.
func (s *spool) update(data []byte, id string) error {
	if err := s.sync.WriteFileTemp(s.envPath(id), s.tmpPattern(), data); err != nil {
		return fmt.Errorf("queue: update %s: %w", id, err)
	}
	return nil
}

// remove deletes a finished message, its envelope file (if hasEnv) first:
// a crash in between leaves <id>.msg, whose own envelope line has it
// delivered again (at-least-once allows it), never a lone <id>.env. No
// directory fsync: a removal lost in a power cut means a delivery again,
// and a lone <id>.env that this leaves is deleted at start-up.
//
// When size (that of <id>.msg) is not negative, <id>.msg may become a spare
// instead of being deleted; the operator's removals pass -1, so that what
// they remove is deleted.
func (s *spool) remove(id string, hasEnv bool, size int64) error {
	if hasEnv {
		if err := os.Remove(s.envPath(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("queue: remove %s: %w", id, err)
		}
	}
	if size >= 0 && s.spares != nil && s.spares.keep(s.msgPath(id), size) {
		return nil
	}
	if err := os.Remove(s.msgPath(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("queue: remove %s: %w", id, err)
	}
	return nil
}

// exists tells whether the message id is in the spool.
func (s *spool) exists(id string) bool {
	_, err := os.Lstat(s.msgPath(id))
	return err == nil
}

// open reads the message bytes of id, which are size bytes from off.
func (s *spool) open(id string, off, size int64) (io.ReadCloser, error) {
	f, err := os.Open(s.msgPath(id))
	if err != nil {
		return nil, fmt.Errorf("queue: open %s: %w", id, err)
	}
	return struct {
		*io.SectionReader
		io.Closer
	}{io.NewSectionReader(f, off, size), f}, nil
}

// errLeftover marks a message file of the old layout that never got its
// envelope file: a crash before the client got its 250.
var errLeftover = errors.New("message file without envelope (never acknowledged)")

// load reads the envelope of id: the line that starts <id>.msg, superseded
// by <id>.env when that exists. The old layout (a bare message in <id>.msg,
// which never starts with "{", beside <id>.env) is read too, with the
// message bytes from offset 0; there, a message without <id>.env is
// errLeftover.
func (s *spool) load(id string) (spooled, error) {
	f, err := os.Open(s.msgPath(id))
	if err != nil {
		return spooled{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return spooled{}, err
	}
	head, off, herr := readHead(f, id)
	var first [1]byte
	if herr != nil {
		f.ReadAt(first[:], 0)
	}
	envData, err := os.ReadFile(s.envPath(id))
	hasEnv := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return spooled{}, err
	}
	if herr != nil && first[0] != '{' { // the old layout
		if !hasEnv {
			return spooled{}, errLeftover
		}
		env, err := parseEnvelope(envData, id)
		if err != nil {
			return spooled{}, fmt.Errorf("old layout: %w", err)
		}
		if env.Size != fi.Size() {
			return spooled{}, fmt.Errorf("old layout: envelope size %d, message file %d bytes", env.Size, fi.Size())
		}
		return spooled{env: env, hasEnv: true}, nil
	}
	if herr != nil {
		return spooled{}, herr
	}
	sp := spooled{env: head, off: off}
	if hasEnv {
		if env, err := parseEnvelope(envData, id); err != nil {
			sp.badEnv = err
		} else {
			sp.env, sp.hasEnv = env, true
		}
	}
	sp.env.Size = fi.Size() - off
	return sp, nil
}

// peek reads the envelope of id for a listing, with less work than load:
// the envelope file alone when it has a readable one (it says the size
// too), else the line that starts the message file, whose size is then
// that of the file less the line. It judges nothing, as start-up does
// (read), and takes buf to read into, returning it grown to be used again:
// a listing of 100,000 messages allocated and cleared a reader's buffer
// per file.
func (s *spool) peek(id string, buf []byte) (*Envelope, []byte, error) {
	buf, err := readSmall(s.envPath(id), buf)
	switch {
	case err == nil:
		if env, err := parseEnvelope(buf, id); err == nil {
			return env, buf, nil
		}
	case !errors.Is(err, fs.ErrNotExist):
		return nil, buf, err
	}
	f, err := durable.OpenFile(s.msgPath(id), os.O_RDONLY, 0)
	if err != nil {
		return nil, buf, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, buf, err
	}
	buf = buf[:cap(buf)]
	for {
		n, err := f.ReadAt(buf, 0)
		if i := bytes.IndexByte(buf[:n], '\n'); i >= 0 {
			env, err := parseEnvelope(buf[:i], id)
			if err != nil {
				return nil, buf, err
			}
			env.Size = fi.Size() - int64(i+1)
			return env, buf, nil
		}
		if err != nil || len(buf) >= maxHead {
			return nil, buf, fmt.Errorf("queue: %s: no envelope line", id)
		}
		buf = make([]byte, max(2*len(buf), 4096))
	}
}

// readSmall reads the small file at path into buf, grown as needed. The
// file is opened as durable.OpenFile does, without the runtime's poller.
func readSmall(path string, buf []byte) ([]byte, error) {
	f, err := durable.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return buf, err
	}
	defer f.Close()
	buf = buf[:0]
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := f.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// readHead reads the envelope line that starts a message file and returns
// it with the offset of the message bytes after it.
func readHead(r io.Reader, id string) (*Envelope, int64, error) {
	line, err := bufio.NewReader(io.LimitReader(r, maxHead)).ReadBytes('\n')
	if err != nil {
		return nil, 0, fmt.Errorf("no envelope line: %w", err)
	}
	env, err := parseEnvelope(line[:len(line)-1], id)
	if err != nil {
		return nil, 0, fmt.Errorf("envelope line: %w", err)
	}
	return env, int64(len(line)), nil
}

// scanChunk is how many names scan reads at once.
const scanChunk = 4096

// scan reads the next names of the spool directory d at start-up, reading
// no file, so that the envelopes can be read afterwards (see Queue.load).
// It runs in the background while new mail is taken: it deletes only the
// temporary files of earlier processes (left by a crash) and adopts only
// their spares, never this process's (see ours), and moves anything it does
// not know into corrupt/. It returns the ids of the message files and of
// the envelope files, whose messages may be gone (see dropLoneEnv); done
// when d has no more names.
//
// Names come in chunks, unsorted: os.ReadDir would sort a million names.
//
// An id takes 16 bytes here, half a string of it (its header and a copy
// of the name): 16 MB less while 1,000,000 messages load.
func (s *spool) scan(d *os.File, log *slog.Logger) (msgs, envs []msgID, done bool, err error) {
	ents, err := d.ReadDir(scanChunk)
	for _, de := range ents {
		name := de.Name()
		id, ext := strings.TrimSuffix(name, filepath.Ext(name)), filepath.Ext(name)
		switch {
		case de.IsDir() || s.ours(name):
			continue
		case strings.HasPrefix(name, tmpPref):
			log.Info("queue: removing temporary file left by a crash", "file", name)
			os.Remove(filepath.Join(s.dir, name))
		case strings.HasPrefix(name, sparePref) && de.Type().IsRegular():
			if s.spares != nil {
				s.spares.adopt(filepath.Join(s.dir, name))
			} else {
				os.Remove(filepath.Join(s.dir, name))
			}
		case ext == envExt && validID(id):
			envs = append(envs, idOf(id))
		case ext == msgExt && validID(id):
			msgs = append(msgs, idOf(id))
		default:
			log.Error("queue: foreign file moved aside", "file", name)
			s.moveAside(name)
		}
	}
	if err == io.EOF {
		return msgs, envs, true, nil
	}
	if err != nil {
		return msgs, envs, true, fmt.Errorf("queue: scan %s: %w", s.dir, err)
	}
	return msgs, envs, false, nil
}

// read loads the envelope of the message id for the scheduler. It deletes
// a message file of the old layout without an envelope (a crash before the
// 250) and moves what it cannot read into corrupt/, so one bad file never
// stops the rest of the mail. An unreadable <id>.env goes to corrupt/
// alone: the message is delivered again from its own envelope line, rather
// than never. ok is false when there is no message to schedule.
func (s *spool) read(id string, log *slog.Logger) (sp spooled, ok bool) {
	sp, err := s.load(id)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		log.Info("queue: message file gone", "id", id)
		return sp, false
	case errors.Is(err, errLeftover):
		log.Info("queue: removing message never acknowledged (no envelope)", "id", id)
		os.Remove(s.msgPath(id))
		return sp, false
	case err != nil:
		log.Error("queue: unreadable message moved aside", "id", id, "err", err)
		s.moveAside(id+msgExt, id+envExt)
		return sp, false
	case sp.badEnv != nil:
		log.Error("queue: corrupt envelope moved aside; delivering again to every recipient", "id", id, "err", sp.badEnv)
		s.moveAside(id + envExt)
	}
	return sp, true
}

// dropLoneEnv deletes <id>.env when <id>.msg is gone: a crash between the
// two removals of a finished message. A message's envelope file is removed
// before its message file and never written without it, so a lone one
// stays lone.
func (s *spool) dropLoneEnv(id string, log *slog.Logger) {
	if _, err := os.Lstat(s.msgPath(id)); errors.Is(err, fs.ErrNotExist) {
		log.Info("queue: removing envelope of a message already gone", "id", id)
		os.Remove(s.envPath(id))
	}
}

// markClean records that no attempt is under way, and none starts before
// the next Open.
func (s *spool) markClean() error {
	return durable.File.WriteFileTemp(filepath.Join(s.dir, cleanName), s.tmpPattern(), nil)
}

// takeClean reports whether the server before stopped cleanly, and takes
// the mark away for good before anything is attempted again.
func (s *spool) takeClean() (bool, error) {
	err := os.Remove(filepath.Join(s.dir, cleanName))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err == nil {
		err = s.sync.Names(s.dir)
	}
	return err == nil, err
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

// msgIDs names the messages in the spool, unsorted, touching nothing.
func (s *spool) msgIDs() ([]string, error) {
	d, err := os.Open(s.dir)
	if err != nil {
		return nil, fmt.Errorf("queue: read %s: %w", s.dir, err)
	}
	defer d.Close()
	var ids []string
	for {
		names, err := d.Readdirnames(scanChunk)
		for _, name := range names {
			if id, ok := strings.CutSuffix(name, msgExt); ok && validID(id) {
				ids = append(ids, id)
			}
		}
		if err == io.EOF {
			return ids, nil
		}
		if err != nil {
			return ids, fmt.Errorf("queue: read %s: %w", s.dir, err)
		}
	}
}

// readEnvelopes reads every readable message without touching anything.
func readEnvelopes(s *spool) ([]spooled, error) {
	ids, err := s.msgIDs()
	if err != nil {
		return nil, err
	}
	var out []spooled
	for _, id := range ids {
		if sp, err := s.load(id); err == nil {
			out = append(out, sp)
		}
	}
	return out, nil
}
