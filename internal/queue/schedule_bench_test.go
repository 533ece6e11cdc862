package queue

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// BenchmarkSchedule is the scheduler beside a deep queue: a destination
// down, 100,000 messages deferred for an hour in the spool.
//
//	attempt/deferred=N: per op, one new message that the destination
//	    defers too: enqueued, dispatched, attempted and re-armed for its
//	    next attempt, with N others waiting. The difference between N = 0
//	    and N = 100,000 is what the depth costs each attempt; a scan of
//	    the waiting messages per dispatch would show here.
//	load/deferred=N: per op, Open on the spool of N messages, as at a
//	    restart: the time until new mail is taken. Run does the rest in
//	    the background: list-s is the time to name them (one pass over
//	    the directory), load-s to read them all after, listed-B/entry
//	    the heap per message once named (the ids to load), and
//	    heap-B/entry the heap the queue keeps per message once they are
//	    loaded.
//	drain/deferred=N: per op, N deferred messages all due (a flush, or
//	    the destination back) delivered and gone from the spool: msgs/s
//	    is the rate of the retry path, its envelope read back, its next
//	    attempt written down before the attempt, its files removed.
//
// Only through the package's API and its spool format (writeMsg), so that
// it measures whatever the scheduler's inside is.
func BenchmarkSchedule(b *testing.B) {
	for _, n := range []int{0, 100_000} {
		b.Run(fmt.Sprintf("attempt/deferred=%d", n), func(b *testing.B) {
			dir := b.TempDir()
			var attempts atomic.Int64
			tr := newFake()
			spoolDeferred(b, dir, n, tr.clock.Now())
			tr.setRule(func(string, string) Result {
				attempts.Add(1)
				return transient("451 4.3.0 down for the day")
			})
			q := openQueue(b, deepConfig(dir, tr))
			run(b, q)
			body := "Subject: bench\r\n\r\n" + strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd\r\n", 64)
			b.ReportAllocs()
			var sent int64
			for b.Loop() {
				m := Message{Origin: FromRelay, ID: NewID(), From: "alice@sender.test", Rcpts: []string{"bob@down.test"}}
				if err := q.Enqueue(m, nil, strings.NewReader(body), nil); err != nil {
					b.Fatal(err)
				}
				sent++
			}
			waitFor(b, "every new message attempted", func() bool { return attempts.Load() >= sent })
		})
	}
	for _, n := range []int{20_000, 100_000} {
		b.Run(fmt.Sprintf("load/deferred=%d", n), func(b *testing.B) {
			dir := b.TempDir()
			spoolDeferred(b, dir, n, newFake().clock.Now())
			var before, listed, after runtime.MemStats
			var q *Queue
			var listing, loading time.Duration
			for b.Loop() {
				b.StopTimer()
				q = nil
				runtime.GC()
				runtime.ReadMemStats(&before)
				b.StartTimer()
				q = openQueue(b, deepConfig(dir, newFake()))
				b.StopTimer()
				start := time.Now()
				q.list(context.Background())
				listing += time.Since(start)
				runtime.GC()
				runtime.ReadMemStats(&listed)
				start = time.Now()
				loadAll(q)
				loading += time.Since(start)
				b.StartTimer()
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
			perMsg := func(m runtime.MemStats) float64 {
				return float64(int64(m.HeapAlloc)-int64(before.HeapAlloc)) / float64(n)
			}
			b.ReportMetric(perMsg(listed), "listed-B/entry")
			b.ReportMetric(perMsg(after), "heap-B/entry")
			b.ReportMetric(listing.Seconds()/float64(b.N), "list-s")
			b.ReportMetric(loading.Seconds()/float64(b.N), "load-s")
			runtime.KeepAlive(q)
		})
	}
	const drainN = 10_000
	b.Run(fmt.Sprintf("drain/deferred=%d", drainN), func(b *testing.B) {
		var took time.Duration
		for b.Loop() {
			b.StopTimer()
			dir := b.TempDir()
			tr := newFake()
			spoolDeferred(b, dir, drainN, tr.clock.Now().Add(-2*time.Hour))
			cfg := deepConfig(dir, tr)
			cfg.Workers, cfg.PerDomain = 16, 4 // the daemon's defaults
			q := openQueue(b, cfg)
			b.StartTimer()
			start := time.Now()
			stop := run(b, q)
			for n, _ := q.Stats(); n > 0; n, _ = q.Stats() {
				if time.Since(start) > 5*time.Minute {
					b.Fatalf("%d messages still queued after 5 minutes", n)
				}
				time.Sleep(time.Millisecond)
			}
			took += time.Since(start)
			stop()
		}
		b.ReportMetric(float64(drainN*b.N)/took.Seconds(), "msgs/s")
	})
}

// deepConfig retries an hour apart; the fake clock, which stands still,
// sees to it that nothing deferred comes due while the benchmark runs.
func deepConfig(dir string, tr *fakeCourier) Config {
	cfg := testConfig(dir, tr)
	cfg.MinBackoff, cfg.MaxBackoff = time.Hour, time.Hour
	return cfg
}

// spoolDeferred writes n messages of 4 KiB, each tried once and due again
// within the hour after now, as a spool holds them for a destination that
// is down. They are written out before it returns: the first durable write
// of a benchmark, whose syncfs would otherwise flush them all, must not
// pay for them.
func spoolDeferred(b *testing.B, dir string, n int, now time.Time) {
	b.Helper()
	data := "From: alice@sender.test\r\nSubject: deferred\r\n\r\n" + strings.Repeat("x", 4000) + "\r\n"
	for i := range n {
		env := &Envelope{ID: NewID(), From: "alice@sender.test", Origin: FromRelay, Arrival: now, Attempts: 1,
			NextAttempt: now.Add(time.Hour + time.Duration(i)*time.Millisecond),
			Rcpts:       []Rcpt{{Addr: fmt.Sprintf("user%d@down.test", i%100), State: Pending, Code: 451, LastError: "down for the day", LastAttempt: now}}}
		writeMsg(b, dir, env, data)
	}
	syscall.Sync()
}

// BenchmarkList is `facteur queue list` on the server's side: per op,
// Queue.List of 100,000 deferred messages, each with its envelope file as
// an attempt leaves it, and none in memory.
func BenchmarkList(b *testing.B) {
	const n = 100_000
	dir := b.TempDir()
	tr := newFake()
	spoolDeferred(b, dir, n, tr.clock.Now())
	sp := spool{dir: dir}
	ids, err := sp.msgIDs()
	if err != nil {
		b.Fatal(err)
	}
	for _, id := range ids {
		env := readEnv(b, dir, id)
		env.Rcpts[0].Host = "mx.down.test[192.0.2.1]"
		data, err := env.marshal()
		if err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(sp.envPath(id), data, 0o600); err != nil {
			b.Fatal(err)
		}
	}
	syscall.Sync()
	q := openQueue(b, deepConfig(dir, tr))
	loadAll(q)
	b.ReportAllocs()
	for b.Loop() {
		if l := q.List(); len(l) != n {
			b.Fatalf("listed %d messages, want %d", len(l), n)
		}
	}
}
