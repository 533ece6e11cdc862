package queue

import (
	"bytes"
	"fmt"
	"time"

	"facteur/internal/dsn"
)

// bounce tells the sender of env which recipients failed, with a DSN queued
// like any message. A message from the null sender is itself a bounce: its
// failure is logged and dropped, never bounced, so bounces cannot loop.
func (q *Queue) bounce(env *Envelope, off int64, failed []int, now time.Time) {
	if env.From == "" {
		for _, i := range failed {
			q.log.Warn("queue: bounce undeliverable, dropped", "id", env.ID, "rcpt", env.Rcpts[i].Addr,
				"err", env.Rcpts[i].LastError)
		}
		return
	}
	b := &dsn.Bounce{ReportingMTA: q.cfg.Hostname, ID: env.ID, From: env.From, Arrival: env.Arrival, Now: now}
	for _, i := range failed {
		r := env.Rcpts[i]
		// A failure given up on is final whatever the last reply said:
		// a DSN's failed action carries a 5.x.x status (RFC 3463).
		status := r.Enhanced
		if len(status) < 5 {
			status = "5.0.0"
		} else if status[0] != '5' {
			status = "5" + status[1:]
		}
		diag := r.LastError
		if r.Code != 0 {
			diag = fmt.Sprintf("%d %s %s", r.Code, r.Enhanced, r.LastError)
		}
		b.Rcpts = append(b.Rcpts, dsn.Recipient{Addr: r.Addr, Action: "failed", Status: status,
			RemoteMTA: r.Host, Diagnostic: diag, LastAttempt: r.LastAttempt})
	}
	orig, err := q.sp.open(env.ID, off, env.Size)
	if err == nil {
		b.Original = orig
		defer orig.Close()
	}
	msg, err := dsn.Build(b)
	if err != nil {
		q.log.Error("queue: building bounce", "id", env.ID, "err", err)
		return
	}
	id := NewID()
	if err := q.Enqueue(Message{ID: id, Rcpts: []string{env.From}}, nil, bytes.NewReader(msg), nil); err != nil {
		q.log.Error("queue: storing bounce", "id", env.ID, "err", err)
		return
	}
	q.log.Info("queue: bounce queued", "id", env.ID, "bounce_id", id, "to", env.From, "failed", len(failed))
}
