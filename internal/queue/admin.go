package queue

import (
	"cmp"
	"container/heap"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ErrUnknown is returned for an id that is not in the queue.
var ErrUnknown = errors.New("no such message in the queue")

// List returns a copy of every queued envelope, oldest first. The
// envelopes of waiting messages, and of those not loaded yet, are read
// from the spool; a message that leaves the queue meanwhile is left out.
// While the spool is being listed at start-up, the messages not named yet
// are found in the spool directory.
func (q *Queue) List() []Envelope {
	type waiting struct {
		id   string
		next int64
	}
	var out []Envelope
	var disk []waiting
	q.mu.Lock()
	for _, e := range q.entries {
		switch {
		case e.loaded != nil:
			env := *e.loaded.env
			env.Rcpts = slices.Clone(env.Rcpts)
			out = append(out, env)
		default:
			disk = append(disk, waiting{e.id.String(), e.next})
		}
	}
	for _, id := range q.unloaded {
		if id != (msgID{}) {
			disk = append(disk, waiting{id: id.String()})
		}
	}
	found := q.att.found
	listing := q.listing.Load()
	q.mu.Unlock()
	if listing {
		known := make(map[string]bool, len(out)+len(disk))
		for _, env := range out {
			known[env.ID] = true
		}
		for _, w := range disk {
			known[w.id] = true
		}
		ids, err := q.sp.msgIDs()
		if err != nil {
			q.log.Error("queue: listing messages not named yet", "err", err)
		}
		for _, id := range ids {
			if !known[id] {
				disk = append(disk, waiting{id: id})
			}
		}
	}
	ids := make([]string, len(disk))
	for i, w := range disk {
		ids[i] = w.id
	}
	for i, env := range q.sp.peekAll(ids) {
		if env == nil {
			continue
		}
		if next := disk[i].next; next != 0 { // Flush may have made it due before the spool says
			env.NextAttempt = time.Unix(0, next)
		} else {
			q.afterStart(env, found)
		}
		out = append(out, *env)
	}
	slices.SortFunc(out, byArrival)
	return out
}

// listReaders bounds the files a listing reads at once. Files in the page
// cache are read as fast as the cores go, so that more readers than cores
// gain nothing there; from a cold disk more reads in flight do. Each
// blocks a thread in the filesystem.
const listReaders = 8

// peekAll reads the envelopes of ids (spool.peek), listReaders at a time;
// an envelope is nil where the message is gone or unreadable.
func (s *spool) peekAll(ids []string) []*Envelope {
	out := make([]*Envelope, len(ids))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(listReaders, len(ids)) {
		wg.Go(func() {
			var buf []byte
			for {
				i := int(next.Add(1) - 1)
				if i >= len(ids) {
					return
				}
				out[i], buf, _ = s.peek(ids[i], buf)
			}
		})
	}
	wg.Wait()
	return out
}

// Stats tells how many messages are queued and when the oldest arrived
// (zero when the queue is empty). While the spool is being loaded, the
// oldest is that of the messages loaded so far, and while it is being
// listed, the count is of the messages named so far.
func (q *Queue) Stats() (int, time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var oldest int64
	for _, e := range q.entries {
		if oldest == 0 || e.arrival < oldest {
			oldest = e.arrival
		}
	}
	if oldest == 0 {
		return len(q.entries) + len(q.unloaded), time.Time{}
	}
	return len(q.entries) + len(q.unloaded), time.Unix(0, oldest)
}

// Flush makes every waiting message due now, those not loaded yet too,
// and returns how many (while the spool is being listed, how many it
// named so far).
func (q *Queue) Flush() int {
	q.mu.Lock()
	now := q.cfg.Now().UnixNano()
	for _, e := range q.waiting {
		e.next = now
	}
	heap.Init(&q.waiting)
	n := q.waiting.Len() + len(q.unloaded)
	if len(q.unloaded) > 0 || q.listing.Load() {
		q.flushed = now
	}
	q.mu.Unlock()
	q.kick()
	return n
}

// Remove deletes a message that is waiting or not loaded yet; one under
// delivery must be removed after its attempt.
func (q *Queue) Remove(id string) error {
	if !validID(id) {
		return fmt.Errorf("%q: %w", id, ErrUnknown)
	}
	q.mu.Lock()
	e, ok := q.entries[idOf(id)]
	// A message not loaded, or waiting with its envelope let go, may have
	// an envelope file: removing one that is not there costs nothing.
	hasEnv := true
	switch {
	case ok && e.index < 0:
		q.mu.Unlock()
		return fmt.Errorf("%s: being delivered right now, try again in a moment", id)
	case ok:
		heap.Remove(&q.waiting, int(e.index))
		delete(q.entries, e.id)
		if e.loaded != nil {
			hasEnv = e.loaded.hasEnv
		}
	default:
		i := slices.Index(q.unloaded, idOf(id))
		_, skipped := q.skip[idOf(id)]
		switch {
		case i >= 0:
			q.unloaded[i] = msgID{} // load passes it over
		case q.skip != nil && !skipped && q.sp.exists(id):
			// The listing has not come to it yet (one in skip is new, and
			// gone since it is no entry, or removed already): it passes it
			// over.
			q.skip[idOf(id)] = struct{}{}
		default:
			q.mu.Unlock()
			return fmt.Errorf("%s: %w", id, ErrUnknown)
		}
	}
	q.mu.Unlock()
	q.log.Info("queue: message removed by the operator", "id", id)
	return q.sp.remove(id, hasEnv, -1)
}

// ListDir reads the envelopes of a spool with no server running, for the
// queue command; it changes nothing.
func ListDir(dir string) ([]Envelope, error) {
	sp := spool{dir: dir}
	ids, err := sp.msgIDs()
	if err != nil {
		return nil, err
	}
	att, err := openAttempts(dir)
	if err != nil {
		return nil, err
	}
	var ents []Envelope
	for _, env := range sp.peekAll(ids) {
		if env != nil {
			retriedAt(env, att.found)
			ents = append(ents, *env)
		}
	}
	slices.SortFunc(ents, byArrival)
	return ents, nil
}

// RemoveDir removes a message from a spool with no server running.
func RemoveDir(dir, id string) error {
	if !validID(id) {
		return fmt.Errorf("%q is not a queue id", id)
	}
	sp := spool{dir: dir}
	if _, err := sp.load(id); err != nil {
		return fmt.Errorf("%s: %w", id, ErrUnknown)
	}
	return sp.remove(id, true, -1)
}

// FlushDir makes every message of a spool with no server running due as
// soon as the server starts, and returns how many. A message not due yet
// (a new one too: see Enqueue) gets an envelope file that says it is.
func FlushDir(dir string) (int, error) {
	sp := spool{dir: dir}
	msgs, err := readEnvelopes(&sp)
	if err != nil {
		return 0, err
	}
	// What the journal of attempts under way says is overruled too.
	att, err := openAttempts(dir)
	if err != nil {
		return 0, err
	}
	now := time.Now()
	for _, m := range msgs {
		env := m.env
		if !env.NextAttempt.After(now) {
			continue
		}
		env.NextAttempt = now
		data, err := env.marshal()
		if err == nil {
			err = sp.update(data, env.ID)
		}
		if err != nil {
			return 0, err
		}
	}
	return len(msgs), att.forget()
}

// byArrival orders envelopes oldest first, then by id, which grows with
// time too, so that a listing is the same each time.
func byArrival(a, b Envelope) int {
	return cmp.Or(a.Arrival.Compare(b.Arrival), strings.Compare(a.ID, b.ID))
}
