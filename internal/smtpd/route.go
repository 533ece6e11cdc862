package smtpd

import (
	"io"
	"slices"
	"strings"
	"time"

	"facteur/internal/aliases"
	"facteur/internal/header"
	"facteur/internal/srs"
	"facteur/internal/users"
)

// delivery is the local copy for one recipient address: the mailboxes it
// reaches, and the address as given, for its Delivered-To field. addrs
// are the addresses of the users map that name those mailboxes, the
// recipients of the copy when it is queued (QueueLocal).
type delivery struct {
	rcpt      string
	mailboxes []string
	addrs     []string
}

// forward is an alias target at another domain, and the recipient
// address that led there.
type forward struct {
	rcpt, addr string
}

// take reports whether a destination ("mailbox alice", "addr
// bob@example.net") is new to the transaction, and notes it: an address
// reached twice, by two recipients or two aliases, gets one copy.
func (s *session) take(dest string) bool {
	if s.dests[dest] {
		return false
	}
	if s.dests == nil {
		s.dests = map[string]bool{}
	}
	s.dests[dest] = true
	return true
}

// expand routes a recipient of a local domain through the aliases to the
// mailboxes and the addresses elsewhere it stands for.
func (s *session) expand(to, local, domain string, u *users.Map) error {
	dests, ok := s.srv.Aliases().Expand(u, s.srv.opts.RecipientDelimiter, local, domain)
	if !ok {
		return s.refuse(reply(550, 1, 1, "<%s>: no such user here", printable(to)), "unknown user", "rcpt", printable(to))
	}
	for _, d := range dests {
		switch {
		case d.Local() && s.take("mailbox "+d.Mailbox):
			s.addLocal(to, d)
		case !d.Local() && s.take("addr "+d.Addr):
			s.forward = append(s.forward, forward{rcpt: to, addr: d.Addr})
		}
	}
	s.rcpts = append(s.rcpts, to)
	s.delivered = append(s.delivered, to)
	return nil
}

func (s *session) addLocal(to string, d aliases.Dest) {
	if n := len(s.local); n > 0 && s.local[n-1].rcpt == to {
		s.local[n-1].mailboxes = append(s.local[n-1].mailboxes, d.Mailbox)
		s.local[n-1].addrs = append(s.local[n-1].addrs, d.Addr)
		return
	}
	s.local = append(s.local, delivery{rcpt: to, mailboxes: []string{d.Mailbox}, addrs: []string{d.Addr}})
}

// isSRS tells whether a recipient is an SRS address that may be ours: at
// the SRS domain, or at a local domain.
func (s *session) isSRS(local, domain string, u *users.Map) bool {
	r := s.srv.opts.SRS
	return r != nil && srs.Is(local) && (domain == r.Domain() || u.IsLocalDomain(domain))
}

// bounceBack takes a recipient that is one of our SRS addresses, most
// often a bounce of mail we forwarded: the mail goes to the original
// sender. A forged or expired address is no one.
func (s *session) bounceBack(to, local string) error {
	orig, err := s.srv.opts.SRS.Reverse(local, time.Now())
	if err != nil {
		if err != srs.ErrInvalid {
			s.log.Error("srs: cannot read the key", "err", err)
			return reply(451, 3, 0, "Local error, try again later")
		}
		return s.refuse(reply(550, 1, 1, "<%s>: no such user here", printable(to)), "invalid SRS address", "rcpt", printable(to))
	}
	if s.take("addr " + strings.ToLower(orig)) {
		s.returns = append(s.returns, orig)
	}
	s.rcpts = append(s.rcpts, to)
	return nil
}

// maxReceived is how many Received fields a message may already carry:
// more, and it is going round in circles (Postfix's hopcount_limit).
const maxReceived = 50

// loopCheck refuses, at the end of the header section, a message that
// has been here before: too many Received fields, or a Delivered-To for
// one of its recipients, which we wrote when we delivered or forwarded it
// for that address (RFC 5321 6.3).
func (s *session) loopCheck(r io.Reader) io.Reader {
	received := 0
	keep := func(name string) bool {
		// Called once per field: the Received fields are counted, not kept.
		if strings.EqualFold(name, "Received") {
			received++
			return false
		}
		return strings.EqualFold(name, "Delivered-To")
	}
	return header.WatchFields(r, keep, func(fields []header.Field) error {
		if received > maxReceived {
			return reply(554, 4, 6, "Mail loop: more than %d Received: header fields", maxReceived)
		}
		for _, f := range fields {
			v := strings.Trim(f.Value, "<> \t")
			if slices.ContainsFunc(s.delivered, func(a string) bool { return strings.EqualFold(a, v) }) {
				return reply(554, 4, 6, "Mail loop: already delivered to <%s>", printable(v))
			}
		}
		return nil
	})
}
