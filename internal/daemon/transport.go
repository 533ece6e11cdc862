package daemon

import (
	"context"
	"strings"

	"facteur/internal/maildir"
	"facteur/internal/remote"
	"facteur/internal/users"
)

// transport is what the queue delivers through: the SMTP client for remote
// domains, the Maildirs for local ones (bounces to local senders, and mail
// queued for a domain that became local since).
type transport struct {
	remote   *remote.Client
	maildir  *maildir.Store
	users    func() *users.Map
	sign     *signer
	hostname string
}

func (t *transport) Deliver(ctx context.Context, domain string, msgs []*remote.Message) [][]remote.Result {
	u := t.users()
	if !u.IsLocalDomain(domain) {
		return t.sign.deliver(msgs, func(msgs []*remote.Message) [][]remote.Result {
			return t.remote.Deliver(ctx, domain, msgs)
		})
	}
	out := make([][]remote.Result, len(msgs))
	for i, m := range msgs {
		out[i] = t.local(u, m)
	}
	return out
}

func (t *transport) local(u *users.Map, m *remote.Message) []remote.Result {
	res := make([]remote.Result, len(m.Rcpts))
	var boxes []string
	var found []int
	for j, rcpt := range m.Rcpts {
		at := strings.LastIndexByte(rcpt, '@')
		mb, ok := u.Lookup(rcpt[:max(at, 0)], rcpt[at+1:])
		if !ok {
			res[j] = remote.Result{Rcpt: rcpt, Status: remote.Permanent, Code: 550, Enhanced: "5.1.1",
				Text: "no such user here", Host: t.hostname}
			continue
		}
		boxes = append(boxes, mb)
		found = append(found, j)
	}
	if len(boxes) == 0 {
		return res
	}
	ok := remote.Result{Status: remote.Sent, Code: 250, Enhanced: "2.0.0", Text: "delivered to Maildir", Host: t.hostname}
	r, err := m.Open()
	if err == nil {
		_, err = t.maildir.Deliver(boxes, maildir.ReturnPath(m.From), r, nil)
		r.Close()
	}
	if err != nil {
		ok = remote.Result{Status: remote.Transient, Code: 451, Enhanced: "4.3.0", Text: "local delivery: " + err.Error(), Host: t.hostname}
	}
	for _, j := range found {
		res[j] = ok
		res[j].Rcpt = m.Rcpts[j]
	}
	return res
}
