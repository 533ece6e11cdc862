package queue

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestJournalAfterCrash: a retry under way at a crash is due, after the
// restart, when the journal said; once the spool is loaded that time is
// in the message's envelope file and the journal found is gone; a clean
// stop leaves no journal; FlushDir overrules it.
func TestJournalAfterCrash(t *testing.T) {
	dir := t.TempDir()
	tr := newFake()
	tr.setRule(func(string, string) Result { return transient("later") })
	held := make(chan struct{})
	tr.setHold(func(n int, _ string) <-chan struct{} {
		if n >= 2 {
			return held
		}
		return nil
	})
	q := openQueue(t, testConfig(dir, tr))
	stop := run(t, q)
	start := tr.clock.Now()
	id, _ := enqueue(t, q, "alice@sender.test", "bob@dest.test")
	waitFor(t, "the first attempt to be recorded", func() bool {
		return exists(filepath.Join(dir, id+envExt)) && readEnv(t, dir, id).Attempts == 1
	})
	if j := journalFiles(t, dir); len(j) != 0 {
		t.Errorf("journal %v after a first attempt, which needs none", j)
	}
	tr.clock.advance(q, time.Minute)
	waitFor(t, "the retry", func() bool { return tr.started("dest.test") == 2 })
	crashed := copySpool(t, dir)

	q2 := openQueue(t, testConfig(crashed, newFake()))
	loadAll(q2)
	if env := readEnv(t, crashed, id); !env.NextAttempt.Equal(start.Add(3 * time.Minute)) {
		t.Errorf("after the restart the envelope file says %v, want two minutes after the retry began", env.NextAttempt)
	}
	if j := journalFiles(t, crashed); len(j) != 0 {
		t.Errorf("journal %v left once the spool is loaded", j)
	}

	tr.setRule(nil)
	close(held)
	waitFor(t, "the spool to empty", emptySpool(t, dir))
	stop()
	if j := journalFiles(t, dir); len(j) != 0 {
		t.Errorf("journal %v left after a clean stop", j)
	}

	// The operator's flush of a stopped spool overrules the journal.
	flushed := copySpool(t, crashed)
	os.WriteFile(filepath.Join(flushed, attemptsDir, "7"), attemptLine(id, time.Now().Add(time.Hour).UnixNano()), 0o600)
	if l, err := ListDir(flushed); err != nil || len(l) != 1 || !l[0].NextAttempt.After(time.Now()) {
		t.Fatalf("ListDir = %+v, %v; want the journal's time, an hour away", l, err)
	}
	if _, err := FlushDir(flushed); err != nil {
		t.Fatal(err)
	}
	if l, err := ListDir(flushed); err != nil || len(l) != 1 || l[0].NextAttempt.After(time.Now()) {
		t.Errorf("ListDir after FlushDir = %+v, %v; want it due", l, err)
	}
	if j := journalFiles(t, flushed); len(j) != 0 {
		t.Errorf("journal %v left by FlushDir", j)
	}
}

// TestJournalTornLine: a line cut short by a crash during its append is
// passed over, the lines before it read.
func TestJournalTornLine(t *testing.T) {
	dir := t.TempDir()
	a, b := NewID(), NewID()
	data := append(attemptLine(a, 100), attemptLine(b, 200)...)
	os.Mkdir(filepath.Join(dir, attemptsDir), 0o700)
	os.WriteFile(filepath.Join(dir, attemptsDir, "3"), data[:len(data)-2], 0o600)
	att, err := openAttempts(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(att.found) != 1 || att.found[a] != 100 || att.n != 3 {
		t.Errorf("found %v, file number %d; want only %s at 100 and 3", att.found, att.n, a)
	}
}

// TestJournalRotates: past attemptsMax bytes a new journal file starts,
// and the one before goes once its attempts have ended: however many
// retries, the journal stays one or two small files.
func TestJournalRotates(t *testing.T) {
	defer func(m int64) { attemptsMax = m }(attemptsMax)
	attemptsMax = 100 // two or three lines a file
	dir := t.TempDir()
	tr := newFake()
	tr.setRule(func(string, string) Result { return transient("later") })
	q := openQueue(t, testConfig(dir, tr))
	run(t, q)
	const n = 20
	for i := range n {
		enqueue(t, q, "alice@sender.test", fmt.Sprintf("bob%d@dest.test", i))
	}
	waitFor(t, "every first attempt", func() bool { return tr.started("dest.test") >= 1 && len(q.List()) == n && q.List()[n-1].Attempts == 1 })
	for round := range 3 {
		tr.clock.advance(q, 4*time.Minute)
		waitFor(t, fmt.Sprintf("retry round %d", round+1), func() bool {
			for _, env := range q.List() {
				if env.Attempts != round+2 {
					return false
				}
			}
			return true
		})
		// Attempts counted in the envelope may still be being written down.
		waitFor(t, fmt.Sprintf("one journal file after %d retries", (round+1)*n), func() bool {
			return len(journalFiles(t, dir)) == 1
		})
	}
}
