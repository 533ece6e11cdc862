package courier

import (
	"context"
	"strings"

	"facteur/internal/queue"
	"facteur/internal/remote"
	"facteur/internal/users"
)

// LMTP hands parcels for local users to a mailbox server, such as Dovecot,
// over LMTP. The users map still decides who is local and names the
// mailbox; the server gets the mailbox name ("alice") or, with Address,
// the mailbox at the recipient's domain ("alice@example.org", for a
// server set up with domain users). Each recipient gets the server's own
// reply to it, so a full mailbox bounces alone.
type LMTP struct {
	Client  *remote.LMTP
	Users   func() *users.Map
	Address bool // [delivery] lmtp_recipient = "address"
}

// sent is one message handed to the server, and where its recipients
// came from: from[k] are the indexes in the parcel of the addresses that
// reach its k-th recipient (two addresses of one mailbox get one copy).
type sent struct {
	parcel int
	from   [][]int
}

func (c LMTP) Deliver(ctx context.Context, _ string, parcels []*queue.Parcel) [][]queue.Result {
	u := c.Users()
	out := make([][]queue.Result, len(parcels))
	var msgs []*remote.Message
	var how []sent
	for i, p := range parcels {
		out[i] = make([]queue.Result, len(p.Rcpts))
		m := &remote.Message{ID: p.ID, From: p.From, Size: p.Size, Open: p.Open, EightBit: p.EightBit, SMTPUTF8: p.SMTPUTF8}
		s := sent{parcel: i}
		index := map[string]int{}
		for j, rcpt := range p.Rcpts {
			mb, ok := mailbox(u, rcpt)
			if !ok {
				out[i][j] = noSuchUser(rcpt, c.Client.Address)
				continue
			}
			if c.Address {
				mb += "@" + strings.ToLower(rcpt[strings.LastIndexByte(rcpt, '@')+1:])
			}
			k, seen := index[mb]
			if !seen {
				k = len(m.Rcpts)
				index[mb] = k
				m.Rcpts = append(m.Rcpts, mb)
				s.from = append(s.from, nil)
			}
			s.from[k] = append(s.from[k], j)
		}
		if len(m.Rcpts) > 0 {
			msgs = append(msgs, m)
			how = append(how, s)
		}
	}
	if len(msgs) == 0 {
		return out
	}
	for n, rs := range c.Client.Deliver(ctx, msgs) {
		s := how[n]
		for k, r := range rs {
			for _, j := range s.from[k] {
				out[s.parcel][j] = result(r)
				out[s.parcel][j].Rcpt = parcels[s.parcel].Rcpts[j]
			}
		}
	}
	return out
}
