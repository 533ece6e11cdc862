package courier

import (
	"context"
	"io"

	"facteur/internal/queue"
	"facteur/internal/remote"
)

// Remote carries parcels to the MX hosts of other domains with the SMTP
// client.
type Remote struct {
	Client *remote.Client
}

func (r Remote) Deliver(ctx context.Context, domain string, parcels []*queue.Parcel) [][]queue.Result {
	msgs := make([]*remote.Message, len(parcels))
	for i, p := range parcels {
		m := &remote.Message{ID: p.ID, From: p.From, Rcpts: p.Rcpts, Size: p.Size, EightBit: p.EightBit, SMTPUTF8: p.SMTPUTF8,
			TLSReport: p.TLSReport}
		m.Open = func() (io.ReadCloser, error) {
			rc, err := p.Open()
			m.Size = p.Size // Open may have grown it: a DKIM signature goes first
			return rc, err
		}
		msgs[i] = m
	}
	out := r.Client.Deliver(ctx, domain, msgs)
	results := make([][]queue.Result, len(out))
	for i, rs := range out {
		results[i] = make([]queue.Result, len(rs))
		for j, res := range rs {
			results[i][j] = result(res)
		}
	}
	return results
}

// result is a reply of the remote package's clients in the queue's terms.
func result(r remote.Result) queue.Result {
	st := queue.Transient
	switch r.Status {
	case remote.Sent:
		st = queue.Delivered
	case remote.Permanent:
		st = queue.Permanent
	}
	return queue.Result{Rcpt: r.Rcpt, Status: st, Code: r.Code, Enhanced: r.Enhanced, Text: r.Text,
		Host: r.Host, TLS: r.TLS, TLSPolicy: r.TLSPolicy}
}
