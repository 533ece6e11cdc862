package queue

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"facteur/internal/durable"
	"facteur/internal/metrics"
)

// Config is fixed for the life of a Queue.
type Config struct {
	Dir        string // the spool directory
	Hostname   string // names us in bounces
	Workers    int    // deliveries under way at once, in total
	PerDomain  int    // deliveries under way at once to one domain
	MinBackoff time.Duration
	MaxBackoff time.Duration
	Lifetime   time.Duration // then pending recipients fail and are bounced
	// DelayWarning is how long after its arrival a message still pending
	// gets its sender one delay warning; 0: never.
	DelayWarning time.Duration
	Sync         durable.Mode // how a new message is made durable
	Courier      Courier
	Metrics      *metrics.Metrics // nil: not counted
	Log          *slog.Logger

	// Now and After are the queue's clock, as time.Now and time.After;
	// nil means the real one. Tests move a fake one rather than wait
	// out backoffs.
	Now   func() time.Time
	After func(time.Duration) <-chan time.Time
}

// batchMax is how many messages for one domain share one connection.
const batchMax = 32

// Queue is the spool plus its scheduler. One goroutine (Run) owns the
// timing; deliveries run in at most Workers goroutines.
type Queue struct {
	cfg  Config
	sp   spool
	log  *slog.Logger
	wake chan struct{}
	// clean: the server that wrote the spool stopped cleanly (takeClean).
	clean bool
	// listDir is the spool directory, open for load to go through it; nil
	// once it is done.
	listDir *os.File
	// listing holds until load has named every message of the spool
	// (spool.scan); then skip is nil.
	listing atomic.Bool
	// lone are the ids of the envelope files found at start-up, checked
	// once every message is loaded (spool.dropLoneEnv).
	lone []msgID
	att  *attempts // guarded by mu

	mu      sync.Mutex
	entries map[msgID]*entry
	waiting entryHeap // entries due at some time, none in flight
	// unloaded are the ids of the messages found at start-up whose
	// envelopes load has yet to read; zero once removed by the operator.
	unloaded []msgID
	// flushed is when Flush last ran while messages were unloaded, in
	// Unix nanoseconds: they are due by then too.
	flushed int64
	// skip are the ids the listing must pass over: those of the messages
	// enqueued while it runs, registered before their files appear, and
	// those the operator removed before it came to them.
	skip    map[msgID]struct{}
	domains map[string]*domainWork
	// recorded are entries due for a retry whose next attempt is now
	// written down, to be routed to their domains.
	recorded []*entry
	// readying counts the entries being made ready (Queue.ready), at
	// most maxReadying.
	readying int
	running  int
	jobs     sync.WaitGroup
}

// maxReadying bounds the retries made ready at once. Each reads its
// envelope back and writes its next attempt, blocking an OS thread in the
// file system: a flush of a deep queue made them all due at once, and a
// goroutine each exhausted the runtime's 10,000 threads (a crash found by
// bench/run.sh's queue_depth step at 100,000). A few dozen keep the disk
// busy and stay far ahead of the deliveries.
const maxReadying = 32

// entry is one queued message in memory. While it waits for a retry it
// holds only what the scheduler needs, in 48 bytes (a size class of the
// allocator: one more field would cost 64): its envelope, recipients and
// their last errors, stays in the spool with what goes with it (loaded),
// read back when the message is due (Queue.ready). A deep queue then
// costs little memory per message: at 1,000,000 waiting messages each
// byte here is a megabyte, twice over once the collector's headroom
// counts.
type entry struct {
	id      msgID
	next    int64   // the next attempt, in Unix nanoseconds: the heap's order
	arrival int64   // in Unix nanoseconds, for Stats
	loaded  *loaded // nil: as in the spool, to read when due
	index   int32   // in the heap; -1 when not waiting
}

// loaded is what an entry holds from when its envelope is read (or
// enqueued) until it waits for a retry again. It is changed only under
// Queue.mu, by the goroutine that holds the entry out of the heap.
type loaded struct {
	env      *Envelope
	off      int64 // where the message bytes start in the message file
	failed   []int // recipients failed during this round, to bounce
	inflight int32 // delivery jobs holding it
	hasEnv   bool  // an envelope file may exist, to remove with the message
	attempt  uint8 // the journal's slot of the retry under way, 0 if none (see attempts)
}

// msgID is a message id as the queue keeps it in memory. An id is always
// 16 characters (validID), and an array, unlike a string, is no pointer
// to an allocation of its own. The zero msgID is no id.
type msgID [16]byte

func idOf(id string) (m msgID) {
	copy(m[:], id)
	return m
}

func (m msgID) String() string { return string(m[:]) }

func (q *Queue) newEntry(env *Envelope) *entry {
	if q.afterStart(env, q.att.found) {
		// The journal's files go once the spool is loaded: the time they
		// gave must be in the envelope file by then.
		data, err := env.marshal()
		if err == nil {
			err = q.sp.update(data, env.ID)
		}
		if err != nil {
			q.log.Error("queue: recording the next attempt of a retry under way at the crash", "id", env.ID, "err", err)
		}
	}
	return &entry{id: idOf(env.ID), next: env.NextAttempt.UnixNano(), arrival: env.Arrival.UnixNano(), index: -1}
}

// afterStart corrects the envelope of a message found at start-up: one
// never tried was stored as under its first attempt (Enqueue), but if the
// server stopped cleanly that attempt never began, and it is due at once;
// one whose retry was under way when the server stopped, as found in the
// journal, is due when that retry said (see attempts), which it reports.
func (q *Queue) afterStart(env *Envelope, found map[string]int64) (retried bool) {
	if q.clean && env.Attempts == 0 {
		env.NextAttempt = env.Arrival
	}
	return retriedAt(env, found)
}

// retriedAt sets the next attempt of env to what found, the journal's
// lines at start-up, says if that is later, and reports whether it did.
func retriedAt(env *Envelope, found map[string]int64) bool {
	if at, ok := found[env.ID]; ok && at > env.NextAttempt.UnixNano() {
		env.NextAttempt = time.Unix(0, at)
		return true
	}
	return false
}

// domainWork is the work waiting for one domain and how much is under way.
type domainWork struct {
	active int
	items  []item
}

// item is one message's recipients at one domain.
type item struct {
	e     *entry
	rcpts []int
}

// Open opens the spool in dir (creating it), ready for new messages at
// once, whatever the spool holds: Run goes through it, names its messages
// and reads and schedules them, in the background (see load).
func Open(cfg Config) (*Queue, error) {
	switch {
	case cfg.Workers < 1 || cfg.PerDomain < 1:
		return nil, errors.New("queue: workers and per-domain limit must be at least 1")
	case cfg.MinBackoff <= 0 || cfg.MaxBackoff < cfg.MinBackoff || cfg.Lifetime <= 0:
		return nil, errors.New("queue: need 0 < min backoff <= max backoff and a positive lifetime")
	case cfg.Courier == nil || cfg.Log == nil:
		return nil, errors.New("queue: a courier and a logger are required")
	}
	if cfg.Now == nil || cfg.After == nil {
		cfg.Now, cfg.After = time.Now, time.After
	}
	if err := durable.MkdirAll(cfg.Dir); err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	run := newRun()
	q := &Queue{cfg: cfg, sp: spool{dir: cfg.Dir, sync: cfg.Sync, spares: &spares{dir: cfg.Dir, run: run}, run: run}, log: cfg.Log,
		wake: make(chan struct{}, 1), entries: map[msgID]*entry{}, skip: map[msgID]struct{}{}, domains: map[string]*domainWork{}}
	var err error
	if q.clean, err = q.sp.takeClean(); err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	if q.att, err = openAttempts(cfg.Dir); err != nil {
		return nil, err
	}
	// Opened here so that an unreadable spool stops the start.
	if q.listDir, err = os.Open(cfg.Dir); err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	q.listing.Store(true)
	return q, nil
}

// Message is what Enqueue takes.
type Message struct {
	ID       string
	From     string
	Origin   Origin
	Rcpts    []string
	EightBit bool
	SMTPUTF8 bool
}

// Enqueue stores header followed by body as a new message and returns once
// it is durable; then it is scheduled at once. An error from body comes
// back wrapped, and nothing stays in the spool.
//
// If also is not nil it runs once the message is durable and before it is
// scheduled, reading the stored bytes; if it fails the message is taken out
// of the spool and its error returned. The relay delivers the local copies
// of a message that also goes abroad this way, so that one reply, 250 or
// 4xx, covers every copy.
func (q *Queue) Enqueue(m Message, header []byte, body io.Reader, also func(stored io.Reader) error) error {
	now := q.cfg.Now()
	// The spool says the first attempt is under way from the start: a
	// restart after a crash in the middle of it waits for MinBackoff
	// rather than trying again at once (see dispatch); after a clean stop,
	// when no attempt was under way, it does not wait (Open).
	env := &Envelope{ID: m.ID, From: m.From, Origin: m.Origin, Arrival: now, NextAttempt: now.Add(q.cfg.MinBackoff),
		EightBit: m.EightBit, SMTPUTF8: m.SMTPUTF8}
	seen := map[string]bool{}
	for _, r := range m.Rcpts {
		if k := strings.ToLower(r); !seen[k] {
			seen[k] = true
			env.Rcpts = append(env.Rcpts, Rcpt{Addr: r, State: Pending})
		}
	}
	if len(env.Rcpts) == 0 || !validID(m.ID) || !m.Origin.valid() {
		return errors.New("queue: enqueue needs a valid id, recipients and origin")
	}
	if q.listing.Load() {
		// Before its file appears: the listing must not find it and
		// schedule it a second time (see load).
		q.mu.Lock()
		if q.skip != nil {
			q.skip[idOf(m.ID)] = struct{}{}
		}
		q.mu.Unlock()
	}
	off, err := q.sp.store(env, header, body)
	if err != nil {
		return err
	}
	if also != nil {
		if err := q.runAlso(env, off, also); err != nil {
			q.sp.remove(env.ID, false, off+env.Size)
			return err
		}
	}
	env.NextAttempt = now
	q.mu.Lock()
	e := &entry{id: idOf(env.ID), next: now.UnixNano(), arrival: now.UnixNano(), loaded: &loaded{env: env, off: off}, index: -1}
	q.entries[e.id] = e
	heap.Push(&q.waiting, e)
	q.mu.Unlock()
	q.kick()
	return nil
}

func (q *Queue) runAlso(env *Envelope, off int64, also func(io.Reader) error) error {
	f, err := q.sp.open(env.ID, off, env.Size)
	if err != nil {
		return err
	}
	defer f.Close()
	return also(f)
}

func (q *Queue) kick() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// Run loads the messages of the spool and schedules deliveries until ctx
// ends, then waits for the deliveries under way (they see ctx ended, stop,
// and record their outcome) and for the loading to stop.
func (q *Queue) Run(ctx context.Context) {
	q.jobs.Go(func() { q.load(ctx) })
	for {
		q.mu.Lock()
		next := q.dispatch(ctx, q.cfg.Now())
		q.mu.Unlock()
		select {
		case <-ctx.Done():
			q.jobs.Wait()
			q.mu.Lock()
			q.att.stop()
			q.mu.Unlock()
			if err := q.sp.markClean(); err != nil {
				q.log.Error("queue: marking a clean stop; new messages will wait min_backoff after the restart", "err", err)
			}
			return
		case <-q.wake:
		case <-q.cfg.After(next):
		}
	}
}

// dispatch moves due entries to their domains' work lists, starts what the
// limits allow, and says how long until the next entry is due.
//
// An entry due for a retry is first made ready off the loop (ready).
// A first attempt needs nothing: Enqueue stored it so.
func (q *Queue) dispatch(ctx context.Context, now time.Time) time.Duration {
	for _, e := range q.recorded {
		q.route(ctx, e)
	}
	q.recorded = nil
	for q.waiting.Len() > 0 && q.waiting[0].next <= now.UnixNano() {
		e := q.waiting[0]
		if e.loaded != nil && e.loaded.env.Attempts == 0 {
			heap.Pop(&q.waiting)
			q.route(ctx, e)
			continue
		}
		if q.readying >= maxReadying {
			break // ready kicks the loop as each one is done
		}
		heap.Pop(&q.waiting)
		q.readying++
		q.jobs.Go(func() { q.ready(e, now) })
	}
	for d, dw := range q.domains {
		for len(dw.items) > 0 && dw.active < q.cfg.PerDomain && q.running < q.cfg.Workers {
			n := min(len(dw.items), batchMax)
			batch := slices.Clone(dw.items[:n])
			dw.items = dw.items[n:]
			dw.active++
			q.startJob(ctx, d, dw, batch)
		}
		if len(dw.items) == 0 && dw.active == 0 {
			delete(q.domains, d)
		}
	}
	if q.waiting.Len() == 0 || q.readying >= maxReadying && q.waiting[0].next <= now.UnixNano() {
		return time.Hour
	}
	return max(time.Duration(q.waiting[0].next-now.UnixNano()), time.Millisecond)
}

// ready readies e, due now and held, for its attempt, then hands it to its
// domains: its envelope is read back from the spool if it was let go, and
// for a retry the time of the attempt after this one is written to the
// journal first (see attempts). A failed write is logged and the attempt
// goes ahead. A message whose file is gone or unreadable leaves the queue
// (see spool.read).
func (q *Queue) ready(e *entry, now time.Time) {
	id := e.id.String()
	q.mu.Lock()
	l := e.loaded
	q.mu.Unlock()
	if l == nil {
		sp, ok := q.sp.read(id, q.log)
		q.mu.Lock()
		if !ok {
			delete(q.entries, e.id)
			q.readying--
			q.mu.Unlock()
			q.kick()
			return
		}
		l = &loaded{env: sp.env, off: sp.off, hasEnv: sp.hasEnv}
		e.loaded = l
		q.mu.Unlock()
	}
	q.mu.Lock()
	var j *durable.Journal
	var line []byte
	var err error
	if l.env.Attempts > 0 {
		l.env.NextAttempt = now.Add(q.backoff(l.env.Attempts + 1))
		line = attemptLine(id, l.env.NextAttempt.UnixNano())
		j, l.attempt, err = q.att.begin(len(line))
	}
	q.mu.Unlock()
	if j != nil {
		err = j.Append(line)
	}
	if err != nil {
		q.log.Error("queue: recording the next attempt before this one", "id", id, "err", err)
	}
	q.mu.Lock()
	q.readying--
	q.recorded = append(q.recorded, e)
	q.mu.Unlock()
	q.kick()
}

// route puts the pending recipients of e, due now, on their domains'
// work lists; called with q.mu held.
func (q *Queue) route(ctx context.Context, e *entry) {
	l := e.loaded
	byDomain := map[string][]int{}
	var order []string
	for _, i := range l.env.pending() {
		d := domainOf(l.env.Rcpts[i].Addr)
		if byDomain[d] == nil {
			order = append(order, d)
		}
		byDomain[d] = append(byDomain[d], i)
	}
	for _, d := range order {
		dw := q.domains[d]
		if dw == nil {
			dw = &domainWork{}
			q.domains[d] = dw
		}
		dw.items = append(dw.items, item{e: e, rcpts: byDomain[d]})
		l.inflight++
	}
	if l.inflight == 0 { // nothing pending: finish it off the loop
		l.inflight = 1
		q.startJob(ctx, "", nil, []item{{e: e}})
	}
}

func (q *Queue) startJob(ctx context.Context, domain string, dw *domainWork, batch []item) {
	q.running++
	q.jobs.Add(1)
	parcels := make([]*Parcel, len(batch))
	for i, it := range batch {
		env, off := it.e.loaded.env, it.e.loaded.off
		p := &Parcel{ID: env.ID, From: env.From, Size: env.Size, EightBit: env.EightBit, SMTPUTF8: env.SMTPUTF8,
			DKIM: env.Origin.Signs(), TLSReport: env.Origin == FromTLSReport,
			Open: func() (io.ReadCloser, error) { return q.sp.open(env.ID, off, env.Size) }}
		for _, r := range it.rcpts {
			p.Rcpts = append(p.Rcpts, env.Rcpts[r].Addr)
		}
		parcels[i] = p
	}
	go q.runJob(ctx, domain, dw, batch, parcels)
}

func (q *Queue) runJob(ctx context.Context, domain string, dw *domainWork, batch []item, parcels []*Parcel) {
	defer q.jobs.Done()
	var results [][]Result
	if domain != "" {
		start := time.Now() // the attempt's real duration, whatever the clock
		results = q.cfg.Courier.Deliver(ctx, domain, parcels)
		q.cfg.Metrics.Attempt(time.Since(start))
	}
	now := q.cfg.Now()
	var done []*entry
	q.mu.Lock()
	for i, it := range batch {
		for j, r := range it.rcpts {
			if i < len(results) && j < len(results[i]) {
				q.apply(it.e, r, results[i][j], now)
			}
		}
		if it.e.loaded.inflight--; it.e.loaded.inflight == 0 {
			done = append(done, it.e)
		}
	}
	q.running--
	if dw != nil {
		dw.active--
	}
	q.mu.Unlock()
	for _, e := range done {
		q.finish(e, now)
	}
	q.kick()
}

// apply records one recipient's outcome; called with q.mu held.
func (q *Queue) apply(e *entry, i int, res Result, now time.Time) {
	l := e.loaded
	r := &l.env.Rcpts[i]
	r.Code, r.Enhanced, r.LastError, r.Host, r.LastAttempt = res.Code, res.Enhanced, res.Text, res.Host, now
	switch res.Status {
	case Delivered:
		r.State, r.LastError = Sent, ""
		q.cfg.Metrics.Delivery("sent", res.TLS, res.TLSPolicy)
	case Permanent:
		r.State = Failed
		l.failed = append(l.failed, i)
		q.cfg.Metrics.Delivery("bounced", res.TLS, res.TLSPolicy)
	default:
		q.cfg.Metrics.Delivery("deferred", res.TLS, res.TLSPolicy)
	}
	attrs := []any{"id", l.env.ID, "rcpt", r.Addr, "result", res.Status.String(), "host", res.Host,
		"tls", tlsLabel(res), "code", res.Code, "enhanced", res.Enhanced, "text", res.Text}
	q.log.Info("delivery", append(attrs, res.Log...)...)
}

// tlsLabel is the delivery log's tls= value: the policy the message went
// under when it was encrypted ("dane", "mta-sts", "opportunistic"...),
// "none" when it was not.
func tlsLabel(res Result) string {
	if !res.TLS {
		return "none"
	}
	return res.TLSPolicy
}

// finish ends a round of attempts for e, which no one else holds now:
// expired recipients fail, failures are bounced, and the message either
// leaves the spool or is written back with its next attempt time.
func (q *Queue) finish(e *entry, now time.Time) {
	q.mu.Lock()
	l := e.loaded
	env := l.env
	if now.Sub(env.Arrival) > q.cfg.Lifetime {
		for _, i := range env.pending() {
			r := &env.Rcpts[i]
			r.State = Failed
			r.LastError = fmt.Sprintf("message expired after %s in the queue; last error: %s", q.cfg.Lifetime, r.LastError)
			r.Enhanced, r.Code = "4.4.7", 0
			l.failed = append(l.failed, i)
			q.cfg.Metrics.Delivery("bounced", false, "")
		}
	}
	failed := l.failed
	l.failed = nil
	pending := env.pending()
	remaining := len(pending)
	var late []int
	if remaining > 0 {
		env.Attempts++
		env.NextAttempt = now.Add(q.backoff(env.Attempts))
		l.hasEnv = true // from now on, even if writing it fails half-way
		// Marked before the envelope is written back, so a restart does not
		// warn again; a crash before that write may warn twice.
		if q.cfg.DelayWarning > 0 && !env.Warned && env.From != "" && now.Sub(env.Arrival) >= q.cfg.DelayWarning {
			env.Warned, late = true, pending
		}
	}
	hasEnv := l.hasEnv
	snapshot := *env
	snapshot.Rcpts = slices.Clone(env.Rcpts)
	q.mu.Unlock()

	if len(failed) > 0 {
		q.bounce(&snapshot, l.off, failed, now)
	}
	if len(late) > 0 {
		q.warn(&snapshot, l.off, late, now)
	}
	if remaining == 0 {
		if err := q.sp.remove(env.ID, hasEnv, l.off+snapshot.Size); err != nil {
			q.log.Error("queue: removing a finished message", "id", env.ID, "err", err)
		}
		q.mu.Lock()
		delete(q.entries, e.id)
		q.attemptEnded(l)
		q.mu.Unlock()
		q.log.Info("queue: message done", "id", env.ID)
		return
	}
	data, err := snapshot.marshal()
	if err == nil {
		err = q.sp.update(data, env.ID)
	}
	if err != nil {
		// The old envelope (file or line) stays: recipients done this
		// round may get the message again, but none is lost. The one in
		// memory, newer, is kept for the next attempt.
		q.log.Error("queue: recording attempt", "id", env.ID, "err", err)
	}
	q.log.Info("queue: deferred", "id", env.ID, "pending", remaining, "attempts", snapshot.Attempts,
		"next_attempt", snapshot.NextAttempt.Format(time.RFC3339))
	q.mu.Lock()
	q.attemptEnded(l)
	e.next = snapshot.NextAttempt.UnixNano()
	if err == nil {
		e.loaded = nil // the spool has it; read back when due
	}
	if _, ok := q.entries[e.id]; ok {
		heap.Push(&q.waiting, e)
	}
	q.mu.Unlock()
}

// attemptEnded tells the journal that the retry of l, if it recorded one,
// has its outcome written down; called with q.mu held.
func (q *Queue) attemptEnded(l *loaded) {
	if l.attempt != 0 {
		q.att.end(l.attempt)
		l.attempt = 0
	}
}

// backoff doubles from MinBackoff with each attempt, up to MaxBackoff.
func (q *Queue) backoff(attempts int) time.Duration {
	d := q.cfg.MinBackoff
	for i := 1; i < attempts && d < q.cfg.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, q.cfg.MaxBackoff)
}

func domainOf(addr string) string {
	return strings.ToLower(addr[strings.LastIndexByte(addr, '@')+1:])
}

// entryHeap orders waiting entries by next attempt.
type entryHeap []*entry

func (h entryHeap) Len() int { return len(h) }
func (h entryHeap) Less(i, j int) bool {
	return h[i].next < h[j].next
}
func (h entryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = int32(i), int32(j)
}
func (h *entryHeap) Push(x any) {
	e := x.(*entry)
	e.index = int32(len(*h))
	*h = append(*h, e)
}
func (h *entryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	e.index = -1
	*h = old[:len(old)-1]
	return e
}
