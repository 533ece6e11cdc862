package queue

import (
	"container/heap"
	"errors"
	"fmt"
	"slices"
	"time"
)

// ErrUnknown is returned for an id that is not in the queue.
var ErrUnknown = errors.New("no such message in the queue")

// List returns a copy of every queued envelope, oldest first.
func (q *Queue) List() []Envelope {
	q.mu.Lock()
	out := make([]Envelope, 0, len(q.entries))
	for _, e := range q.entries {
		env := *e.env
		env.Rcpts = slices.Clone(e.env.Rcpts)
		out = append(out, env)
	}
	q.mu.Unlock()
	slices.SortFunc(out, func(a, b Envelope) int { return a.Arrival.Compare(b.Arrival) })
	return out
}

// Stats tells how many messages are queued and when the oldest arrived
// (zero when the queue is empty).
func (q *Queue) Stats() (int, time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var oldest time.Time
	for _, e := range q.entries {
		if oldest.IsZero() || e.env.Arrival.Before(oldest) {
			oldest = e.env.Arrival
		}
	}
	return len(q.entries), oldest
}

// Flush makes every waiting message due now and returns how many.
func (q *Queue) Flush() int {
	q.mu.Lock()
	now := q.cfg.Now()
	for _, e := range q.waiting {
		e.env.NextAttempt = now
	}
	heap.Init(&q.waiting)
	n := q.waiting.Len()
	q.mu.Unlock()
	q.kick()
	return n
}

// Remove deletes a message that is waiting; one under delivery must be
// removed after its attempt.
func (q *Queue) Remove(id string) error {
	q.mu.Lock()
	e, ok := q.entries[id]
	switch {
	case !ok:
		q.mu.Unlock()
		return fmt.Errorf("%s: %w", id, ErrUnknown)
	case e.index < 0:
		q.mu.Unlock()
		return fmt.Errorf("%s: being delivered right now, try again in a moment", id)
	}
	heap.Remove(&q.waiting, e.index)
	delete(q.entries, id)
	hasEnv := e.hasEnv
	q.mu.Unlock()
	q.log.Info("queue: message removed by the operator", "id", id)
	return q.sp.remove(id, hasEnv, -1)
}

// ListDir reads the envelopes of a spool with no server running, for the
// queue command; it changes nothing.
func ListDir(dir string) ([]Envelope, error) {
	sp := spool{dir: dir}
	msgs, err := readEnvelopes(&sp)
	if err != nil {
		return nil, err
	}
	ents := make([]Envelope, len(msgs))
	for i, m := range msgs {
		ents[i] = *m.env
	}
	slices.SortFunc(ents, func(a, b Envelope) int { return a.Arrival.Compare(b.Arrival) })
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
	return len(msgs), nil
}
