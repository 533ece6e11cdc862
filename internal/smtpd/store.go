package smtpd

import (
	"bufio"
	"io"
	"os"
	"strings"
	"time"

	"facteur/internal/header"
	"facteur/internal/maildir"
	"facteur/internal/queue"
)

// target is one form in which a message is stored: the fields above its
// Received field, and either local mailboxes or a queued message; local
// is a local copy queued for LMTP.
type target struct {
	header    []byte
	mailboxes []string
	msg       *queue.Message
	local     bool
}

// targets are where the transaction's message goes: queued messages
// first (the first takes the id of the reply), then the local copies,
// one per recipient address, as each has its own Delivered-To field.
func (s *session) targets(id string) ([]target, error) {
	var ts []target
	queued := func(m queue.Message, rcpts []string, header []byte) {
		m.ID, m.Rcpts, m.EightBit, m.SMTPUTF8 = id, rcpts, s.eightBit, s.utf8
		if len(ts) > 0 {
			m.ID = queue.NewID()
		}
		ts = append(ts, target{header: header, msg: &m})
	}
	if len(s.remote) > 0 {
		queued(queue.Message{From: s.from, Origin: s.origin()}, s.remote, nil)
	}
	if len(s.returns) > 0 {
		// A bounce keeps its null sender.
		queued(queue.Message{From: s.from, Origin: s.forwardOrigin()}, s.returns, nil)
	}
	if len(s.forward) > 0 {
		from, err := s.forwardFrom()
		if err != nil {
			return nil, err
		}
		for i := 0; i < len(s.forward); {
			rcpt := s.forward[i].rcpt
			var addrs []string
			for ; i < len(s.forward) && s.forward[i].rcpt == rcpt; i++ {
				addrs = append(addrs, s.forward[i].addr)
			}
			queued(queue.Message{From: from, Origin: s.forwardOrigin()}, addrs, deliveredTo(nil, rcpt))
		}
	}
	for _, d := range s.local {
		if s.srv.opts.QueueLocal {
			// The LMTP server writes Return-Path from MAIL FROM.
			queued(queue.Message{From: s.from, Origin: s.origin()}, d.addrs, deliveredTo(nil, d.rcpt))
			ts[len(ts)-1].local = true
			continue
		}
		ts = append(ts, target{header: deliveredTo(maildir.ReturnPath(s.from), d.rcpt), mailboxes: d.mailboxes})
	}
	return ts, nil
}

func deliveredTo(b []byte, addr string) []byte {
	// The address passed splitAddress: no control characters.
	return append(append(append(b, "Delivered-To: "...), addr...), "\r\n"...)
}

// forwardFrom is the envelope sender of mail forwarded to other domains:
// rewritten with SRS to an address of ours, so that SPF passes there and
// a bounce comes back through us. The null sender stays null, and so does
// a sender of our own domains, for whom we send anyway.
func (s *session) forwardFrom() (string, error) {
	r := s.srv.opts.SRS
	if r == nil || s.from == "" {
		return s.from, nil
	}
	if i := strings.LastIndexByte(s.from, '@'); i > 0 && s.srv.Users().IsLocalDomain(s.from[i+1:]) {
		return s.from, nil
	}
	return r.Forward(s.from, time.Now())
}

// forwardOrigin is the origin of the mail forwarded to other domains: the
// session's own when its client is trusted, else "forward", never signed,
// so that a forged From of our domain sent to an alias cannot leave with
// our signature.
func (s *session) forwardOrigin() queue.Origin {
	if o := s.origin(); o != queue.FromMX {
		return o
	}
	return queue.FromForward
}

// store makes the message durable everywhere it goes before the 250.
// One target takes the stream as it comes; several are written from a
// scratch copy, checked once, then queued (each queued message runs the
// next step before it is scheduled, so a failure takes back all of them)
// and delivered. A failure between two local copies leaves the first:
// the client retries, and that mailbox gets the message twice rather
// than never.
func (s *session) store(id, received string, body io.Reader) error {
	ts, err := s.targets(id)
	if err != nil {
		return err
	}
	check := s.check(id)
	if len(ts) == 1 && (ts[0].msg == nil || check == nil) {
		return s.storeFrom(ts, received, func() io.Reader { return body }, check)
	}
	f, err := os.CreateTemp(s.srv.opts.ScratchDir, "scratch-*")
	if err != nil {
		return err
	}
	os.Remove(f.Name())
	defer f.Close()
	n, err := io.Copy(f, body)
	if err != nil {
		return err
	}
	scratch := func() io.Reader { return io.NewSectionReader(f, 0, n) }
	if check != nil {
		head := string(maildir.ReturnPath(s.from)) + received
		v, err := check(io.MultiReader(strings.NewReader(head), scratch()), int64(len(head))+n)
		if err != nil {
			return err
		}
		check = func(io.Reader, int64) (maildir.Verdict, error) { return v, nil }
	}
	return s.storeFrom(ts, received, scratch, check)
}

// storeFrom stores the message read by body into ts, in order.
func (s *session) storeFrom(ts []target, received string, body func() io.Reader, check maildir.Check) error {
	if len(ts) == 0 {
		return nil
	}
	t := ts[0]
	head := append(t.header[:len(t.header):len(t.header)], received...)
	if t.msg != nil {
		data := body()
		if t.local && check != nil {
			var err error
			if head, data, err = edited(head, data, check); err != nil {
				return err
			}
		}
		return s.srv.opts.Queue.Enqueue(*t.msg, head, data, func(io.Reader) error {
			return s.storeFrom(ts[1:], received, body, check)
		})
	}
	if _, err := s.srv.opts.Maildir.Deliver(t.mailboxes, head, body(), check); err != nil {
		return err
	}
	return s.storeFrom(ts[1:], received, body, check)
}

// edited applies the checks' verdict to a local copy on its way to the
// queue, as the Maildir store applies it to the copies it stores: head
// and the header section read from body are rewritten (the
// Authentication-Results field, rspamd's), and the rest of body follows.
// The Junk folder is the mailbox server's business, with a Sieve rule on
// rspamd's fields. check has run already (store): it only gives its
// verdict again.
func edited(head []byte, body io.Reader, check maildir.Check) ([]byte, io.Reader, error) {
	v, err := check(nil, 0)
	if err != nil || v.Edit == nil {
		return head, body, err
	}
	br := bufio.NewReader(body)
	raw, _, _, err := header.Read(br)
	if err != nil {
		return nil, nil, err
	}
	return v.Edit(append(head[:len(head):len(head)], raw...)), br, nil
}
