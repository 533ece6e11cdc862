package remote

import (
	"fmt"
	"strconv"
	"strings"
)

// transact runs one mail transaction for message i on s and reports whether
// the session can carry another; more says another transaction follows.
func (c *Client) transact(s *session, d *delivery, i int, more bool) (ok bool) {
	m := d.msgs[i]
	log := c.log().With("id", m.ID, "host", s.host)
	if s.addr.IsValid() { // an LMTP socket has a path, no address
		log = log.With("addr", s.addr)
	}
	log = log.With("tls", s.tls)
	if r, refused := s.refuse(m); refused {
		d.take(i, r)
		log.Info("message refused before MAIL", "rcpts", m.Rcpts, "enhanced", r.Enhanced, "text", r.Text)
		return true
	}
	body, err := m.Open()
	if err != nil {
		d.take(i, Result{Status: Transient, Enhanced: "4.3.0", Text: "cannot read message: " + err.Error()})
		log.Error("cannot read message", "err", err)
		return true
	}
	defer body.Close()

	rcpts := d.waiting(i)
	var lines []string
	if s.dirty {
		lines = append(lines, "RSET")
	}
	lines = append(lines, s.mailCommand(d.from[i], m))
	for _, j := range rcpts {
		lines = append(lines, "RCPT TO:<"+d.rcpts[i][j]+">")
	}
	lines = append(lines, "DATA")
	p := s.pipe(lines)
	defer func() { ok = p.settle(ok) }()

	first, got := p.next()
	if s.gone(!got || first.fatal()) {
		return false
	}
	if s.dirty {
		if first.Status != Sent {
			d.fail(i, s.hostResult(first))
			return false
		}
		s.dirty = false
		first, _ = p.next()
	}
	s.dirty = true
	if r := first; r.Status != Sent {
		if r.Status == Permanent {
			d.take(i, r)
		} else {
			d.fail(i, s.hostResult(r))
		}
		log.Info("MAIL refused", "rcpts", m.Rcpts, "code", r.Code, "text", r.Text)
		return !r.fatal()
	}

	var accepted, refused []int
	for _, j := range rcpts {
		r, _ := p.next()
		if r.Status == Sent {
			accepted = append(accepted, j)
			continue
		}
		d.decide(i, j, r)
		refused = append(refused, j)
		if r.fatal() {
			d.take(i, r)
			log.Info("session lost at RCPT", "rcpts", m.Rcpts, "err", r.Text)
			return false
		}
	}
	d.open[i] = false
	if len(accepted) == 0 {
		log.Info("every recipient refused", "rcpts", m.Rcpts, "refused", summary(d, i, refused))
		return true
	}

	done := func(r Result) bool {
		for _, j := range accepted {
			d.decide(i, j, r)
		}
		// Debug: the queue logs each recipient's outcome, with the same reply.
		log.Debug("transaction", "rcpts", m.Rcpts, "status", r.Status, "code", r.Code, "text", r.Text, "refused", summary(d, i, refused))
		return !r.fatal()
	}
	r, _ := p.next()
	if r.Code != 354 {
		return done(r)
	}
	// The final dot ends the transaction, whatever its reply.
	s.dirty = false
	if r, sent := p.body(body); !sent {
		return done(r)
	}
	if s.lmtp {
		log.Debug("transaction", "rcpts", m.Rcpts, "refused", summary(d, i, refused))
		return s.lmtpReplies(d, i, accepted)
	}
	if more && p.group > 1 {
		// RFC 2920 lets message content begin a group: the dot waits for
		// the next transaction's commands, to go in the same write, and
		// its reply is read before theirs.
		s.after = done
		return true
	}
	return done(s.final())
}

// mailCommand is MAIL FROM for m, with the parameters of the extensions it
// needs; refuse has checked that the host offers them.
func (s *session) mailCommand(from string, m *Message) string {
	var b strings.Builder
	b.WriteString("MAIL FROM:<" + from + ">")
	if m.EightBit {
		b.WriteString(" BODY=8BITMIME")
	}
	if ok, _ := s.cl.Extension("SIZE"); ok && m.Size > 0 {
		b.WriteString(" SIZE=" + strconv.FormatInt(m.Size, 10))
	}
	if needsUTF8(m) {
		b.WriteString(" SMTPUTF8")
	}
	return b.String()
}

// gone reports whether lost, about the first reply on a session taken from
// the idle pool, says the server closed the session while it was idle. Then
// the session is marked stale, to be replaced by a new connection. Any other
// answer shows the server alive, and ends the grace.
func (s *session) gone(lost bool) bool {
	if !s.reused {
		return false
	}
	s.reused = false
	s.stale = lost
	return s.stale
}

// refuse checks that the host can carry message m at all. RFC 6531 and 6152
// forbid sending what needs SMTPUTF8 or 8BITMIME to a server without them.
func (s *session) refuse(m *Message) (Result, bool) {
	no := func(enhanced, format string, args ...any) (Result, bool) {
		return s.stamp(Result{Status: Permanent, Enhanced: enhanced, Text: fmt.Sprintf(format, args...)}), true
	}
	if ok, _ := s.cl.Extension("SMTPUTF8"); !ok && needsUTF8(m) {
		return no("5.6.7", "%s does not support SMTPUTF8, which the message needs", s.host)
	}
	if ok, _ := s.cl.Extension("8BITMIME"); !ok && m.EightBit {
		return no("5.6.3", "%s does not support 8BITMIME, which the message needs", s.host)
	}
	if max, ok := s.cl.MaxMessageSize(); ok && max > 0 && m.Size > int64(max) {
		return no("5.3.4", "message of %d bytes exceeds the %d bytes %s accepts", m.Size, max, s.host)
	}
	return Result{}, false
}

func needsUTF8(m *Message) bool {
	if m.SMTPUTF8 || !isASCII(m.From) {
		return true
	}
	for _, r := range m.Rcpts {
		if !isASCII(r) {
			return true
		}
	}
	return false
}

// summary lists the refused recipients of message i for the log.
func summary(d *delivery, i int, js []int) []string {
	var out []string
	for _, j := range js {
		r := d.out[i][j]
		out = append(out, fmt.Sprintf("%s: %d %s %s", r.Rcpt, r.Code, r.Enhanced, r.Text))
	}
	return out
}
