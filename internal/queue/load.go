package queue

import (
	"container/heap"
	"context"
	"slices"
	"time"
)

// loadBatch is how many envelopes load reads between two looks at the
// rest of the queue's work.
const loadBatch = 256

// load reads the envelopes of the messages Open found and schedules them,
// loadBatch at a time, while new messages are enqueued and delivered: a
// restart with a deep queue takes mail at once rather than after reading
// it all. Each message keeps only what the scheduler needs (see entry).
// Ending ctx stops it between two batches; the messages not read stay in
// the spool for the next start, as they were.
//
// Messages enqueued meanwhile have ids that Open did not find, so none is
// scheduled twice.
func (q *Queue) load(ctx context.Context) {
	start, n := time.Now(), 0
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
}
