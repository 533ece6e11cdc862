package sendmail

import (
	"bytes"
	"time"

	"facteur/internal/dsn"
)

// Bounce is the delivery status notification that tells m's sender which
// recipients the server refused, for hostname, the server: the program
// that called sendmail seldom reads its standard error, the sender reads
// mail. It goes from the null sender, as the queue's own bounces do, so it
// is never bounced in turn; a message from the null sender gets none.
func Bounce(m *Message, d *Delivery, hostname string, now time.Time) (*Message, error) {
	b := &dsn.Bounce{ReportingMTA: hostname, ID: d.ID, From: m.From, Arrival: now,
		Original: bytes.NewReader(m.Data), Now: now}
	for _, r := range d.Refused {
		b.Rcpts = append(b.Rcpts, dsn.Recipient{Addr: r.Rcpt, Action: "failed", Status: r.status(), RemoteMTA: hostname,
			Diagnostic: r.Reply(), LastAttempt: now})
	}
	data, err := dsn.Build(b)
	if err != nil {
		return nil, err
	}
	return &Message{Rcpts: []string{m.From}, Data: data}, nil
}
