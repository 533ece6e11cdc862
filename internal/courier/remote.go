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
			results[i][j] = queue.Result{Rcpt: res.Rcpt, Status: status(res.Status), Code: res.Code,
				Enhanced: res.Enhanced, Text: res.Text, Host: res.Host, TLS: res.TLS, TLSPolicy: res.TLSPolicy}
		}
	}
	return results
}

func status(s remote.Status) queue.Status {
	switch s {
	case remote.Sent:
		return queue.Delivered
	case remote.Permanent:
		return queue.Permanent
	}
	return queue.Transient
}
