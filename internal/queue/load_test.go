package queue

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// spoolWaiting writes n messages tried once and due again in an hour, as
// a restart finds them behind a destination that is down, and returns
// their ids.
func spoolWaiting(t testing.TB, dir string, n int, now time.Time) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = NewID()
		env := &Envelope{ID: ids[i], From: "alice@sender.test", Origin: FromRelay, Arrival: now, Attempts: 1,
			NextAttempt: now.Add(time.Hour),
			Rcpts:       []Rcpt{{Addr: fmt.Sprintf("user%d@down.test", i), State: Pending, Code: 451, LastError: "down", LastAttempt: now}}}
		writeMsg(t, dir, env, "Subject: old\r\n\r\n")
	}
	return ids
}

// blockLoading puts in the spool a message file that is a FIFO: loading
// stops there until release opens its other end, which makes it a file
// that is no message (dropped). When done is closed first, release
// takes the FIFO away instead.
func blockLoading(t *testing.T, dir string) (release func(done <-chan struct{})) {
	t.Helper()
	path := filepath.Join(dir, NewID()+msgExt)
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	return func(done <-chan struct{}) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			// Without a reader yet, the open fails rather than wait.
			if f, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
				f.Write([]byte("not an envelope\n"))
				f.Close()
				return
			}
			select {
			case <-done: // loading stopped before it: take it away
				os.Remove(path)
				return
			case <-time.After(time.Millisecond):
			}
		}
		t.Error("loading never reached the FIFO")
	}
}

func loading(q *Queue) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.unloaded) > 0
}

// A restart takes and delivers new mail while the messages it found are
// still being read; those are listed, counted, flushed and removed as if
// loaded, and each is delivered once.
func TestServesWhileLoading(t *testing.T) {
	dir := t.TempDir()
	tr := newFake()
	old := spoolWaiting(t, dir, 3*loadBatch, tr.clock.Now())
	release := blockLoading(t, dir)

	q := openQueue(t, testConfig(dir, tr))
	fresh, _ := enqueue(t, q, "alice@sender.test", "bob@up.test")
	run(t, q)
	waitFor(t, "the new message delivered", func() bool { return tr.deliveries()[fresh] == 1 })
	second, _ := enqueue(t, q, "alice@sender.test", "carol@up.test")
	waitFor(t, "a message enqueued while loading delivered", func() bool { return tr.deliveries()[second] == 1 })
	if !loading(q) {
		t.Fatal("loading finished before the FIFO was released")
	}
	// The FIFO counts until read; the new messages once finished.
	waitFor(t, "Stats to count the messages found", func() bool { n, _ := q.Stats(); return n == len(old)+1 })
	gone := old[len(old)-1]
	if err := q.Remove(gone); err != nil {
		t.Fatalf("Remove while loading: %v", err)
	}
	if exists(filepath.Join(dir, gone+msgExt)) {
		t.Error("message removed while loading still on disk")
	}
	if n := q.Flush(); n < len(old)-1 {
		t.Errorf("Flush while loading = %d, want every message found (%d)", n, len(old)-1)
	}

	release(nil)
	waitFor(t, "loading to end", func() bool { return !loading(q) })
	// Flushed while loading: due now, though the spool says in an hour.
	waitFor(t, "the spool to empty", emptySpool(t, dir))
	d := tr.deliveries()
	for _, id := range append(old[:len(old)-1], fresh, second) {
		if d[id] != 1 {
			t.Errorf("%s delivered %d times, want once", id, d[id])
		}
	}
	if d[gone] != 0 {
		t.Errorf("message removed while loading delivered %d times", d[gone])
	}
	if len(d) != len(old)+1 {
		t.Errorf("%d messages delivered, want %d", len(d), len(old)+1)
	}
}

// Shutting down in the middle of loading loses nothing and schedules
// nothing twice: the next start reads the spool again.
func TestShutdownWhileLoading(t *testing.T) {
	dir := t.TempDir()
	tr := newFake()
	old := spoolWaiting(t, dir, 3*loadBatch, tr.clock.Now())
	release := blockLoading(t, dir)

	q := openQueue(t, testConfig(dir, tr))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { q.Run(ctx); close(done) }()
	fresh, _ := enqueue(t, q, "alice@sender.test", "bob@up.test")
	waitFor(t, "the new message delivered", func() bool { return tr.deliveries()[fresh] == 1 })
	cancel()
	release(done) // the FIFO is one open(2) that no context ends
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended while loading")
	}
	for _, id := range old {
		if !exists(filepath.Join(dir, id+msgExt)) {
			t.Fatalf("%s gone after a shutdown while loading", id)
		}
	}

	again := newFake()
	q2 := openQueue(t, testConfig(dir, again))
	second, _ := enqueue(t, q2, "alice@sender.test", "carol@up.test")
	// Nothing loaded yet: the spool answers.
	l := q2.List()
	if len(l) != len(old)+1 || l[len(l)-1].ID != second || l[0].Attempts != 1 || !l[0].NextAttempt.Equal(again.clock.Now().Add(time.Hour)) ||
		l[0].Size != int64(len("Subject: old\r\n\r\n")) {
		t.Fatalf("List before loading: %d messages, want %d, the new one last; first %+v", len(l), len(old)+1, l[0])
	}
	run(t, q2)
	waitFor(t, "loading to end", func() bool { return !loading(q2) })
	again.clock.advance(q2, time.Hour)
	waitFor(t, "the spool to empty", emptySpool(t, dir))
	d := again.deliveries()
	for _, id := range append(old, second) {
		if d[id] != 1 {
			t.Errorf("%s delivered %d times after the restart, want once", id, d[id])
		}
	}
	if len(d) != len(old)+1 {
		t.Errorf("%d messages delivered after the restart, want %d", len(d), len(old)+1)
	}
}

// A waiting message costs its entry, a map slot and a heap slot: the entry
// must stay within the allocator's 48-byte size class (see entry).
func TestEntrySize(t *testing.T) {
	if n := unsafe.Sizeof(entry{}); n > 48 {
		t.Errorf("entry is %d bytes, want at most 48", n)
	}
}

// A waiting message keeps no envelope in memory; it is read back when due
// and its state survives: a message whose file vanished leaves the queue
// when due, without an attempt.
func TestWaitingEnvelopeReadBack(t *testing.T) {
	dir := t.TempDir()
	tr := newFake()
	tr.setRule(deferOnly("b.test", "later"))
	q := openQueue(t, testConfig(dir, tr))
	run(t, q)
	id, data := enqueue(t, q, "alice@sender.test", "x@a.test", "y@b.test")
	vanish, _ := enqueue(t, q, "alice@sender.test", "z@b.test")
	waitFor(t, "both deferred and let go", func() bool {
		q.mu.Lock()
		defer q.mu.Unlock()
		n := 0
		for _, e := range q.waiting {
			if e.loaded == nil {
				n++
			}
		}
		return n == 2
	})
	if l := q.List(); len(l) != 2 || l[0].ID != id || l[0].Rcpts[0].State != Sent || l[0].Rcpts[1].LastError != "later" || l[0].Size != int64(len(data)) {
		t.Fatalf("List of waiting messages = %+v", l)
	}
	if err := os.Remove(filepath.Join(dir, vanish+msgExt)); err != nil {
		t.Fatal(err)
	}
	tr.setRule(nil)
	tr.clock.advance(q, time.Minute)
	waitFor(t, "the spool to empty", func() bool {
		fs := files(t, dir)
		return len(fs) == 1 && fs[0] == vanish+envExt // lone until the next start
	})
	waitFor(t, "the queue to empty", func() bool { n, _ := q.Stats(); return n == 0 })
	c := tr.callsTo("b.test")
	if len(c) != 3 || c[2].ids[0] != id || c[2].rcpts[0][0] != "y@b.test" || string(c[2].data[0]) != string(data) {
		t.Errorf("calls to b.test = %+v, want the retry of %s to y@b.test only", c, id)
	}
	if err := q.Remove(vanish); !errors.Is(err, ErrUnknown) {
		t.Errorf("Remove of a message whose file vanished = %v", err)
	}
}

// A flush of a deep queue makes every retry due at once: they are made ready
// a bounded number at a time (each blocks a thread in the file system, and
// a goroutine each exhausted the runtime's threads), and all are delivered.
func TestFlushReadiesBoundedNumber(t *testing.T) {
	dir := t.TempDir()
	tr := newFake()
	now := tr.clock.Now()
	const n = 10 * maxReadying
	spoolWaiting(t, dir, n, now)
	q := openQueue(t, testConfig(dir, tr))
	loadAll(q)
	q.Flush()
	q.mu.Lock()
	q.dispatch(context.Background(), q.cfg.Now())
	// ready waits for q.mu, held here: none has finished.
	if got := n - q.waiting.Len(); got != maxReadying || q.readying != maxReadying {
		t.Errorf("%d entries taken from the heap, %d being made ready; want %d", got, q.readying, maxReadying)
	}
	q.mu.Unlock()
	run(t, q)
	waitFor(t, "every message delivered", func() bool { m, _ := q.Stats(); return m == 0 })
	if got := len(tr.deliveries()); got != n {
		t.Errorf("%d recipients delivered, want %d", got, n)
	}
}

// Start-up goes through the spool while new mail is taken: it deletes the
// temporary files and adopts the spares of earlier runs, with a token or
// without (older versions), and leaves this run's alone, even a spare it
// made from an old message; a message enqueued before the listing came to
// it is scheduled once; one removed before is not scheduled, and one never
// queued is unknown.
func TestListingLeavesThisRunAlone(t *testing.T) {
	dir := t.TempDir()
	tr := newFake()
	old := spoolWaiting(t, dir, 3, tr.clock.Now())
	oldTmp := []string{".tmp-123456", ".tmp-ABCDEFGH-42"}
	oldSpares := []string{sparePref + "06H01FP8AYNGG6C8", sparePref + "ABCDEFGH-06H01FP8AYNGG6C9"}
	for _, name := range append(slices.Clone(oldTmp), oldSpares...) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("old"), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	q := openQueue(t, testConfig(dir, tr))
	fresh, _ := enqueue(t, q, "alice@sender.test", "bob@up.test")
	// A file this run is writing now, and a spare it made.
	ourTmp := filepath.Join(dir, tmpPref+q.sp.run+"-1")
	spent := filepath.Join(dir, "spent")
	for _, path := range []string{ourTmp, spent} {
		if err := os.WriteFile(path, []byte("ours"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if !q.sp.spares.keep(spent, 4) {
		t.Fatal("spare not kept")
	}
	ourSpare := q.sp.spares.names[0]
	if err := q.Remove(old[0]); err != nil {
		t.Fatalf("Remove of a message not listed yet: %v", err)
	}
	if err := q.Remove(NewID()); !errors.Is(err, ErrUnknown) {
		t.Errorf("Remove of a message never queued = %v", err)
	}
	l := q.List()
	if len(l) != len(old) || !slices.ContainsFunc(l, func(e Envelope) bool { return e.ID == fresh }) {
		t.Errorf("List before the listing: %+v, want %d messages, the new one among them", l, len(old))
	}

	loadAll(q)
	for _, name := range oldTmp {
		if exists(filepath.Join(dir, name)) {
			t.Errorf("%s, an earlier run's temporary file, still there", name)
		}
	}
	if !exists(ourTmp) {
		t.Error("this run's temporary file deleted")
	}
	want := []string{ourSpare, filepath.Join(dir, oldSpares[0]), filepath.Join(dir, oldSpares[1])}
	if got := slices.Sorted(slices.Values(q.sp.spares.names)); !slices.Equal(got, slices.Sorted(slices.Values(want))) {
		t.Errorf("spares %v, want each of %v once", got, want)
	}
	q.mu.Lock()
	var waiting []string
	for _, e := range q.waiting {
		waiting = append(waiting, e.id.String())
	}
	q.mu.Unlock()
	slices.Sort(waiting)
	wantWaiting := slices.Sorted(slices.Values(append(slices.Clone(old[1:]), fresh)))
	if !slices.Equal(waiting, wantWaiting) {
		t.Errorf("waiting %v, want each of %v once", waiting, wantWaiting)
	}

	os.Remove(ourTmp)
	run(t, q)
	tr.clock.advance(q, time.Hour)
	waitFor(t, "the spool to empty", emptySpool(t, dir))
	d := tr.deliveries()
	for _, id := range append(old[1:], fresh) {
		if d[id] != 1 {
			t.Errorf("%s delivered %d times, want once", id, d[id])
		}
	}
	if len(d) != len(old) {
		t.Errorf("deliveries %v, want %d", d, len(old))
	}
}
