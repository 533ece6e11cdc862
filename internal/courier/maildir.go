package courier

import (
	"context"
	"strings"

	"facteur/internal/maildir"
	"facteur/internal/queue"
	"facteur/internal/users"
)

// Maildir stores parcels for local users in their Maildirs: bounces to
// local senders, and mail queued for a domain that became local since.
type Maildir struct {
	Store    *maildir.Store
	Users    func() *users.Map // the map in force, which names each address's mailbox
	Hostname string            // the Host of results
}

func (c Maildir) Deliver(_ context.Context, _ string, parcels []*queue.Parcel) [][]queue.Result {
	u := c.Users()
	out := make([][]queue.Result, len(parcels))
	for i, p := range parcels {
		out[i] = c.deliver(u, p)
	}
	return out
}

func (c Maildir) deliver(u *users.Map, p *queue.Parcel) []queue.Result {
	res := make([]queue.Result, len(p.Rcpts))
	var boxes []string
	var found []int
	for j, rcpt := range p.Rcpts {
		mb, ok := mailbox(u, rcpt)
		if !ok {
			res[j] = noSuchUser(rcpt, c.Hostname)
			continue
		}
		boxes = append(boxes, mb)
		found = append(found, j)
	}
	if len(boxes) == 0 {
		return res
	}
	ok := queue.Result{Status: queue.Delivered, Code: 250, Enhanced: "2.0.0", Text: "delivered to Maildir", Host: c.Hostname}
	r, err := p.Open()
	if err == nil {
		_, err = c.Store.Deliver(boxes, maildir.ReturnPath(p.From), r, nil)
		r.Close()
	}
	if err != nil {
		ok = queue.Result{Status: queue.Transient, Code: 451, Enhanced: "4.3.0", Text: "local delivery: " + err.Error(), Host: c.Hostname}
	}
	for _, j := range found {
		res[j] = ok
		res[j].Rcpt = p.Rcpts[j]
	}
	return res
}

// mailbox is the mailbox of a local address, as the users map names it.
func mailbox(u *users.Map, addr string) (string, bool) {
	at := strings.LastIndexByte(addr, '@')
	return u.Lookup(addr[:max(at, 0)], addr[at+1:])
}

// noSuchUser is the result for a local address the users map lacks (it
// was taken out since the message was queued).
func noSuchUser(rcpt, host string) queue.Result {
	return queue.Result{Rcpt: rcpt, Status: queue.Permanent, Code: 550, Enhanced: "5.1.1", Text: "no such user here", Host: host}
}
