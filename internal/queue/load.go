package queue

import (
	"container/heap"
	"context"
	"runtime/debug"
	"slices"
	"time"
)

// loadBatch is how many envelopes load reads between two looks at the
// rest of the queue's work.
const loadBatch = 256

// load goes through the spool once Open has returned: it names every
// message (list), then reads their envelopes and schedules them, loadBatch
// at a time, while new messages are enqueued and delivered: a restart with
// a deep queue takes mail at once rather than after a pass over a million
// names and the reading of their files. Each message keeps only what the
// scheduler needs (see entry). Ending ctx stops it between two chunks or
// batches; the messages not read stay in the spool for the next start, as
// they were.
func (q *Queue) load(ctx context.Context) {
	start, n := time.Now(), 0
	if !q.list(ctx) {
		return
	}
	for ctx.Err() == nil {
		q.mu.Lock()
		batch := slices.Clone(q.unloaded[:min(len(q.unloaded), loadBatch)])
		q.mu.Unlock()
		if len(batch) == 0 {
			break
		}
		read := make([]*entry, len(batch))
		for i, id := range batch {
			if id == (msgID{}) {
				continue
			}
			if sp, ok := q.sp.read(id.String(), q.log); ok {
				read[i] = q.newEntry(sp.env)
			}
		}
		q.mu.Lock()
		for i, e := range read {
			// An id blanked meanwhile was removed by the operator.
			if e == nil || q.unloaded[i] != batch[i] {
				continue
			}
			if q.flushed != 0 {
				e.next = min(e.next, q.flushed)
			}
			q.entries[e.id] = e
			heap.Push(&q.waiting, e)
			n++
		}
		q.unloaded = q.unloaded[len(batch):]
		if len(q.unloaded) == 0 {
			q.unloaded, q.flushed = nil, 0
		}
		q.mu.Unlock()
		q.kick()
	}
	if ctx.Err() != nil {
		return
	}
	q.mu.Lock()
	err := q.att.forget()
	q.mu.Unlock()
	if err != nil {
		q.log.Error("queue: removing the journal of the attempts under way before the start", "err", err)
	}
	for _, id := range q.lone {
		q.sp.dropLoneEnv(id.String(), q.log)
	}
	q.lone = nil
	if n > 0 {
		q.log.Info("queue: loaded", "messages", n, "took", time.Since(start).Round(time.Millisecond))
	}
	if n >= freeAfterLoad {
		// Reading a deep spool makes garbage as large as the queue (every
		// envelope is parsed, then let go), and the heap the collector
		// let grow for it would otherwise stay mapped while the server
		// idles: at 1,000,000 messages 312 bytes of RSS a message, where
		// the entries hold about 115.
		debug.FreeOSMemory()
	}
}

// freeAfterLoad is the number of messages loaded from which the memory
// their loading used is handed back to the system at once.
const freeAfterLoad = 100_000

// list names the messages of the spool (spool.scan) as unloaded, and
// reports whether it got to the end. The messages enqueued meanwhile are
// new files that the listing may see too, depending on where it stands in
// the directory: each is in q.skip before its file appears (Enqueue), and
// the listing looks there after seeing the file, so it never schedules
// one a second time, even one delivered and gone by then. (An id that
// Enqueue refuses for being in the spool already would be skipped too; ids
// hold the time they were made, so none can be a previous run's.)
func (q *Queue) list(ctx context.Context) bool {
	for q.listDir != nil {
		if ctx.Err() != nil {
			return false
		}
		msgs, envs, done, err := q.sp.scan(q.listDir, q.log)
		if err != nil {
			// Not fatal: the messages named so far are delivered, the rest
			// wait for the next start.
			q.log.Error("queue: going through the spool at start-up; some queued messages wait for a restart", "err", err)
		}
		q.mu.Lock()
		for _, id := range msgs {
			if _, ok := q.skip[id]; !ok {
				q.unloaded = append(q.unloaded, id)
			}
		}
		for _, id := range envs {
			if _, ok := q.skip[id]; !ok {
				q.lone = append(q.lone, id)
			}
		}
		if done {
			q.listDir.Close()
			q.listDir, q.skip = nil, nil
			q.listing.Store(false)
		}
		q.mu.Unlock()
	}
	return true
}
