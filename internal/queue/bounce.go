package queue

import (
	"bytes"
	"fmt"
	"time"

	"facteur/internal/dsn"
)

// bounce tells the sender of env which recipients failed, with a DSN queued
// like any message. A message from the null sender is itself a DSN: its
// failure is logged and dropped, never bounced, so bounces cannot loop.
func (q *Queue) bounce(env *Envelope, off int64, failed []int, now time.Time) {
	if env.From == "" {
		for _, i := range failed {
			q.log.Warn("queue: bounce undeliverable, dropped", "id", env.ID, "rcpt", env.Rcpts[i].Addr,
				"err", env.Rcpts[i].LastError)
		}
		return
	}
	q.notify("bounce", env, off, failed, now, func(r Rcpt) dsn.Recipient {
		// A failure given up on is final whatever the last reply said:
		// a DSN's failed action carries a 5.x.x status (RFC 3463).
		return dsn.Recipient{Action: "failed", Status: statusOf(r.Enhanced, '5')}
	})
}

// warn tells the sender of env that the recipients pending have not been
// delivered yet and until when they will be tried (RFC 3464's delayed).
// The null sender is never warned.
func (q *Queue) warn(env *Envelope, off int64, pending []int, now time.Time) {
	until := env.Arrival.Add(q.cfg.Lifetime)
	q.notify("delay warning", env, off, pending, now, func(r Rcpt) dsn.Recipient {
		return dsn.Recipient{Action: "delayed", Status: statusOf(r.Enhanced, '4'), WillRetryUntil: until}
	})
}

// statusOf is enhanced with its class set to class, or class.0.0 when the
// reply had no enhanced code.
func statusOf(enhanced string, class byte) string {
	if len(enhanced) < 5 {
		return string(class) + ".0.0"
	}
	return string(class) + enhanced[1:]
}

// notify queues a DSN to the sender of env about the recipients idx, each
// with the action and status describe gives and its last attempt.
func (q *Queue) notify(kind string, env *Envelope, off int64, idx []int, now time.Time, describe func(Rcpt) dsn.Recipient) {
	b := &dsn.Bounce{ReportingMTA: q.cfg.Hostname, ID: env.ID, From: env.From, Arrival: env.Arrival, Now: now}
	for _, i := range idx {
		r := env.Rcpts[i]
		d := describe(r)
		d.Addr, d.RemoteMTA, d.Diagnostic, d.LastAttempt = r.Addr, r.Host, r.LastError, r.LastAttempt
		if r.Code != 0 {
			d.Diagnostic = fmt.Sprintf("%d %s %s", r.Code, r.Enhanced, r.LastError)
		}
		b.Rcpts = append(b.Rcpts, d)
	}
	orig, err := q.sp.open(env.ID, off, env.Size)
	if err == nil {
		b.Original = orig
		defer orig.Close()
	}
	msg, err := dsn.Build(b)
	if err != nil {
		q.log.Error("queue: building "+kind, "id", env.ID, "err", err)
		return
	}
	id := NewID()
	if err := q.Enqueue(Message{ID: id, Origin: FromFacteur, Rcpts: []string{env.From}}, nil, bytes.NewReader(msg), nil); err != nil {
		q.log.Error("queue: storing "+kind, "id", env.ID, "err", err)
		return
	}
	q.log.Info("queue: "+kind+" queued", "id", env.ID, "dsn_id", id, "to", env.From, "rcpts", len(idx))
}
