package queue

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"facteur/internal/durable"
)

// attempts is the journal of the retries under way. Before a retry starts,
// the time of the attempt after it is written down, so that a crash in the
// middle of the attempt, were it the attempt's own doing, does not have the
// restarted server try the message again at once, and crash again, in a
// loop. Written into each message's envelope file, that cost a file
// created, renamed and synced per retry, and the drain of a deep queue ran
// at a third of the rate of new mail; appended to one file, whose appends
// of the moment share one fdatasync, it costs a line.
//
// The journal is the files .attempts-<n> in the spool, lines
// "<id> <Unix nanoseconds>\n". A line is spent once its attempt has ended:
// finish has written the envelope file, or removed the message. When the
// file being written passes attemptsMax bytes the next line starts file
// n+1, and file n is deleted once every attempt it records has ended; so
// at most two files are in use. A clean stop ends every attempt and deletes
// them. At start-up the files found are read (found); a message whose line
// says later than its envelope has its envelope rewritten so as it is
// loaded, and the files are deleted once the whole spool is loaded.
//
// Its state is guarded by Queue.mu; appends run outside it.
type attempts struct {
	dir  string
	cur  *durable.Journal // nil until the first retry, or after a clean stop
	n    uint64           // the number of cur's file
	size int64            // bytes given to cur
	// live counts the attempts under way recorded in file n (at n%2) and
	// in file n-1, prev.
	live [2]int
	prev *durable.Journal // nil once deleted
	// found is the latest time of each message in the files found at
	// start-up, at old; nil once the spool is loaded.
	found map[string]int64
	old   []string
}

// attemptsDir is the journal's directory in the spool: its own, so that
// start-up finds the journal without reading the spool's directory, which
// may hold millions of names.
const attemptsDir = "attempts"

// attemptsMax is the size of a journal file past which the next one is
// started; tests make it small.
var attemptsMax int64 = 1 << 20

// openAttempts reads the journal files found in the spool dir.
func openAttempts(spool string) (*attempts, error) {
	a := &attempts{dir: filepath.Join(spool, attemptsDir)}
	if err := durable.MkdirAll(a.dir); err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	ents, err := os.ReadDir(a.dir)
	if err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	for _, de := range ents {
		p := filepath.Join(a.dir, de.Name())
		n, err := strconv.ParseUint(de.Name(), 10, 64)
		if err != nil || !de.Type().IsRegular() {
			continue // not ours
		}
		a.n = max(a.n, n)
		if err := a.read(p); err != nil {
			return nil, err
		}
		a.old = append(a.old, p)
	}
	return a, nil
}

// read adds the lines of the journal file p to found.
func (a *attempts) read(p string) error {
	b, err := os.ReadFile(p)
	if err != nil {
		return fmt.Errorf("queue: read %s: %w", p, err)
	}
	if a.found == nil {
		a.found = map[string]int64{}
	}
	// What follows the last newline was being appended: its attempt had
	// not begun.
	for line := range bytes.Lines(b[:bytes.LastIndexByte(b, '\n')+1]) {
		id, at, _ := strings.Cut(strings.TrimSuffix(string(line), "\n"), " ")
		if ns, err := strconv.ParseInt(at, 10, 64); err == nil && validID(id) {
			a.found[id] = max(a.found[id], ns)
		}
	}
	return nil
}

// begin counts an attempt about to be recorded and returns the journal to
// append its line to, with its slot for end. Called with Queue.mu held; a
// new file is made there, once every attemptsMax bytes.
func (a *attempts) begin(line int) (*durable.Journal, uint8, error) {
	if a.cur == nil || a.size >= attemptsMax && a.prev == nil {
		if err := a.rotate(); err != nil {
			return nil, 0, err
		}
	}
	a.size += int64(line)
	a.live[a.n%2]++
	return a.cur, uint8(a.n%2) + 1, nil
}

func (a *attempts) rotate() error {
	j, err := durable.CreateJournal(filepath.Join(a.dir, strconv.FormatUint(a.n+1, 10)))
	if err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	if a.cur != nil {
		a.prev = a.cur
	}
	a.cur, a.n, a.size = j, a.n+1, 0
	if a.prev != nil && a.live[(a.n-1)%2] == 0 {
		a.drop(&a.prev)
	}
	return nil
}

// end counts an attempt of slot ended, its outcome written down: a file
// left behind whose attempts have all ended is deleted. Called with
// Queue.mu held.
func (a *attempts) end(slot uint8) {
	i := uint64(slot - 1)
	a.live[i]--
	if a.prev != nil && i != a.n%2 && a.live[i] == 0 {
		a.drop(&a.prev)
	}
}

// stop deletes the journal after a clean stop, every attempt ended.
func (a *attempts) stop() {
	a.drop(&a.prev)
	a.drop(&a.cur)
}

// forget deletes the files found at start-up: once every message they name
// is loaded, any later time they gave being in its envelope file, or when
// the operator makes every message due (FlushDir).
func (a *attempts) forget() error {
	for _, p := range a.old {
		if err := os.Remove(p); err != nil {
			return fmt.Errorf("queue: %w", err)
		}
	}
	a.found, a.old = nil, nil
	return nil
}

func (a *attempts) drop(j **durable.Journal) {
	if *j == nil {
		return
	}
	(*j).Close()
	os.Remove((*j).Name())
	*j = nil
}

// attemptLine is the journal's line for id, next attempt at next.
func attemptLine(id string, next int64) []byte {
	return append(strconv.AppendInt(append([]byte(id), ' '), next, 10), '\n')
}
