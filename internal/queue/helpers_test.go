package queue

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// call is one Deliver call as the fake courier saw it.
type call struct {
	domain string
	ids    []string
	froms  []string
	rcpts  [][]string
	dkim   []bool
	report []bool   // Parcel.TLSReport
	data   [][]byte // what msg.Open() gave, read whole
}

// fakeCourier answers per recipient as rule says (Delivered when rule is nil),
// may hold a call until the test releases it, records every call and counts
// how many calls run at once, per domain and in total. It also keeps the
// test's clock, since every queue test has a fake courier at hand.
type fakeCourier struct {
	clock *fakeClock

	mu    sync.Mutex
	rule  func(domain, rcpt string) Result
	hold  func(n int, domain string) <-chan struct{} // n counts calls to domain from 1; nil: no hold
	calls []call
	n     map[string]int
	act   map[string]int
	maxAt map[string]int
	total int
	maxT  int
}

func newFake() *fakeCourier {
	return &fakeCourier{clock: newClock(), n: map[string]int{}, act: map[string]int{}, maxAt: map[string]int{}}
}

// fakeClock is the queue's clock in tests: it stands still until the test
// moves it, so that no test waits out a backoff.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []waiter
}

type waiter struct {
	at time.Time
	ch chan time.Time
}

func newClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	w := waiter{at: c.now.Add(d), ch: make(chan time.Time, 1)}
	if d <= 0 {
		w.ch <- c.now
	} else {
		c.waiters = append(c.waiters, w)
	}
	return w.ch
}

// advance moves the clock of q by d and has its scheduler look again: the
// scheduler may have read the time before the move and armed its wait
// after it.
func (c *fakeClock) advance(q *Queue, d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if w.at.After(c.now) {
			kept = append(kept, w)
			continue
		}
		w.ch <- c.now
	}
	c.waiters = kept
	c.mu.Unlock()
	q.kick()
}

func sent(string, string) Result {
	return Result{Status: Delivered, Code: 250, Host: "mx.test"}
}

func transient(text string) Result {
	return Result{Status: Transient, Code: 451, Enhanced: "4.3.0", Text: text, Host: "mx.test"}
}

// deferOnly makes every recipient at domain wait (451, with text) and
// sends the rest.
func deferOnly(domain, text string) func(string, string) Result {
	return func(d, rcpt string) Result {
		if d == domain {
			return transient(text)
		}
		return sent(d, rcpt)
	}
}

func permanent(text string) Result {
	return Result{Status: Permanent, Code: 550, Enhanced: "5.1.1", Text: text, Host: "mx.test"}
}

func (f *fakeCourier) setRule(rule func(domain, rcpt string) Result) {
	f.mu.Lock()
	f.rule = rule
	f.mu.Unlock()
}

func (f *fakeCourier) setHold(hold func(n int, domain string) <-chan struct{}) {
	f.mu.Lock()
	f.hold = hold
	f.mu.Unlock()
}

func (f *fakeCourier) Deliver(ctx context.Context, domain string, msgs []*Parcel) [][]Result {
	c := call{domain: domain}
	for _, m := range msgs {
		c.ids = append(c.ids, m.ID)
		c.froms = append(c.froms, m.From)
		c.rcpts = append(c.rcpts, slices.Clone(m.Rcpts))
		c.dkim = append(c.dkim, m.DKIM)
		c.report = append(c.report, m.TLSReport)
	}
	f.mu.Lock()
	f.n[domain]++
	n := f.n[domain]
	f.act[domain]++
	f.maxAt[domain] = max(f.maxAt[domain], f.act[domain])
	f.total++
	f.maxT = max(f.maxT, f.total)
	hold := f.hold
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.act[domain]--
		f.total--
		f.mu.Unlock()
	}()

	canceled := false
	if hold != nil {
		if ch := hold(n, domain); ch != nil {
			select {
			case <-ch:
			case <-ctx.Done():
				canceled = true
			}
		}
	}
	for _, m := range msgs {
		var data []byte
		if r, err := m.Open(); err == nil {
			data, _ = io.ReadAll(r)
			r.Close()
		}
		c.data = append(c.data, data)
	}
	f.mu.Lock()
	rule := f.rule
	f.calls = append(f.calls, c)
	f.mu.Unlock()
	if rule == nil {
		rule = sent
	}
	out := make([][]Result, len(msgs))
	for i, m := range msgs {
		for _, r := range m.Rcpts {
			res := rule(domain, r)
			if canceled {
				res = transient("shutting down")
			}
			res.Rcpt = r
			out[i] = append(out[i], res)
		}
	}
	return out
}

// started counts the calls to domain begun so far, held ones included.
func (f *fakeCourier) started(domain string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n[domain]
}

func (f *fakeCourier) callList() []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// callsTo lists the calls to one domain.
func (f *fakeCourier) callsTo(domain string) []call {
	var out []call
	for _, c := range f.callList() {
		if c.domain == domain {
			out = append(out, c)
		}
	}
	return out
}

// deliveries counts how many times each message id was handed over.
func (f *fakeCourier) deliveries() map[string]int {
	out := map[string]int{}
	for _, c := range f.callList() {
		for _, id := range c.ids {
			out[id]++
		}
	}
	return out
}

// testConfig has the queue deliver through tr on tr's clock. Its backoffs
// are minutes: a test that passed by waiting them out would take too long
// to go unnoticed.
func testConfig(dir string, tr *fakeCourier) Config {
	return Config{
		Dir:        dir,
		Hostname:   "mx.facteur.test",
		Workers:    8,
		PerDomain:  2,
		MinBackoff: time.Minute,
		MaxBackoff: 4 * time.Minute,
		Lifetime:   24 * time.Hour,
		Courier:    tr,
		Log:        slog.New(slog.DiscardHandler),
		Now:        tr.clock.Now,
		After:      tr.clock.After,
	}
}

func openQueue(t testing.TB, cfg Config) *Queue {
	t.Helper()
	q, err := Open(cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return q
}

// loadAll reads every message Open found, as Run does in the background.
func loadAll(q *Queue) { q.load(context.Background()) }

// run starts the scheduler; the returned stop cancels it and waits for Run
// to return (also done at cleanup).
func run(t testing.TB, q *Queue) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		q.Run(ctx)
		close(done)
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Errorf("Run did not return after its context ended")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// waitFor polls cond until it holds, failing the test after a generous
// deadline so that a hang becomes a failure.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// enqueue queues a small message and returns its id and stored bytes.
func enqueue(t testing.TB, q *Queue, from string, rcpts ...string) (string, []byte) {
	t.Helper()
	id := NewID()
	header := []byte("Received: from client.test by mx.facteur.test with " + id + "\r\n")
	body := "From: <" + from + ">\r\nTo: " + strings.Join(rcpts, ", ") + "\r\nSubject: test " + id + "\r\n\r\nHello.\r\n"
	if err := q.Enqueue(Message{Origin: FromRelay, ID: id, From: from, Rcpts: rcpts}, header, strings.NewReader(body), nil); err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	return id, append(header, body...)
}

// files lists the regular files of dir (not of corrupt/), sorted, but for
// spares, which hold no message.
func files(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, de := range ents {
		if !de.IsDir() && !strings.HasPrefix(de.Name(), sparePref) {
			out = append(out, de.Name())
		}
	}
	sort.Strings(out)
	return out
}

// spareFiles lists the spares in dir.
func spareFiles(t testing.TB, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, sparePref+"*"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func emptySpool(t testing.TB, dir string) func() bool {
	return func() bool { return len(files(t, dir)) == 0 }
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// readEnv reads the envelope of id as the spool holds it now and as a
// restart or `facteur queue list` would see it: the line that starts the
// message file, or the envelope file that supersedes it.
func readEnv(t testing.TB, dir, id string) *Envelope {
	t.Helper()
	sp, err := (&spool{dir: dir}).load(id)
	if err != nil {
		t.Fatalf("envelope of %s on disk: %v", id, err)
	}
	if sp.badEnv != nil {
		t.Fatalf("envelope file of %s: %v", id, sp.badEnv)
	}
	return sp.env
}

// readMsg splits the message file of id into its envelope line and the
// message bytes.
func readMsg(t testing.TB, dir, id string) (*Envelope, []byte) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, id+msgExt))
	if err != nil {
		t.Fatal(err)
	}
	line, data, ok := bytes.Cut(b, []byte("\n"))
	if !ok {
		t.Fatalf("message file of %s has no envelope line: %q", id, b)
	}
	env, err := parseEnvelope(line, id)
	if err != nil {
		t.Fatalf("envelope line of %s: %v\n%s", id, err, line)
	}
	return env, data
}

// writeMsg writes a message file the way the spool does, envelope line
// first.
func writeMsg(t testing.TB, dir string, env *Envelope, data string) {
	t.Helper()
	head, err := env.marshalHead()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, env.ID+msgExt), append(head, data...), 0o600); err != nil {
		t.Fatal(err)
	}
}

// copySpool copies the files of the spool dir, as they are now, to a new
// directory: the spool a crash at this moment leaves.
func copySpool(t testing.TB, dir string) string {
	t.Helper()
	copied := t.TempDir()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range ents {
		switch {
		case de.Name() == attemptsDir:
			os.Mkdir(filepath.Join(copied, attemptsDir), 0o700)
			for _, j := range journalFiles(t, dir) {
				copyFile(t, j, filepath.Join(copied, attemptsDir, filepath.Base(j)))
			}
		case !de.IsDir():
			copyFile(t, filepath.Join(dir, de.Name()), filepath.Join(copied, de.Name()))
		}
	}
	return copied
}

func copyFile(t testing.TB, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// journalFiles lists the journal of attempts in dir.
func journalFiles(t testing.TB, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, attemptsDir, "*"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}
