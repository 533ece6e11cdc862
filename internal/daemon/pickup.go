package daemon

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"facteur/internal/maildrop"
	"facteur/internal/queue"
)

// pickupEvery is how often the maildrop is looked at after start-up: it
// only fills while the server is down, so rarely is enough.
const pickupEvery = 10 * time.Second

// pickup queues what `facteur sendmail` left in the maildrop while the
// server was down, at start and then now and then, until ctx ends.
func (d *Daemon) pickup(ctx context.Context) {
	dir := filepath.Join(d.config().DataDir, "maildrop")
	submit := func(env maildrop.Envelope, body io.Reader) error {
		id := queue.NewID()
		received := fmt.Sprintf("Received: by %s (facteur, from the local maildrop) id %s;\r\n\t%s\r\n",
			d.config().Hostname, id, time.Now().Format(time.RFC1123Z))
		return d.queue.Enqueue(queue.Message{ID: id, From: env.From, Origin: queue.FromSendmail, Rcpts: env.Rcpts}, []byte(received), body, nil)
	}
	t := time.NewTicker(pickupEvery)
	defer t.Stop()
	for {
		if n, err := maildrop.Pickup(dir, submit, d.log); err != nil {
			d.log.Error("maildrop pickup", "err", err)
		} else if n > 0 {
			d.log.Info("maildrop: messages queued", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
