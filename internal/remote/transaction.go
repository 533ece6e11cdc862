package remote

import (
	"fmt"
	"io"
	"time"

	"github.com/emersion/go-smtp"
)

// transact runs one mail transaction for message i on s and reports whether
// the session can carry another.
func (c *Client) transact(s *session, d *delivery, i int) bool {
	m := d.msgs[i]
	log := c.log().With("id", m.ID, "host", s.host, "addr", s.addr, "tls", s.tls)
	if s.dirty {
		// go-smtp forgets the EHLO reply at RSET and would say EHLO again
		// lazily, inside Extension, where a failure reads as "not supported".
		if err := s.reset(c.helo()); err != nil {
			if !s.gone(err) {
				d.fail(i, s.hostResult(err))
			}
			return false
		}
	}
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

	s.dirty = true
	if err := s.cl.Mail(d.from[i], &smtp.MailOptions{Size: m.Size, UTF8: needsUTF8(m)}); err != nil {
		if s.gone(err) {
			return false
		}
		r := s.result(err)
		if r.Status == Permanent {
			d.take(i, r)
		} else {
			d.fail(i, s.hostResult(err))
		}
		log.Info("MAIL refused", "rcpts", m.Rcpts, "code", r.Code, "text", r.Text)
		return !fatal(err)
	}

	s.reused = false
	var accepted, refused []int
	for _, j := range d.waiting(i) {
		err := s.cl.Rcpt(d.rcpts[i][j], nil)
		if err == nil {
			accepted = append(accepted, j)
			continue
		}
		d.decide(i, j, s.result(err))
		refused = append(refused, j)
		if fatal(err) {
			d.take(i, s.result(err))
			log.Info("session lost at RCPT", "rcpts", m.Rcpts, "err", err)
			return false
		}
	}
	d.open[i] = false
	if len(accepted) == 0 {
		log.Info("every recipient refused", "rcpts", m.Rcpts, "refused", summary(d, i, refused))
		return true
	}

	r := s.data(body)
	for _, j := range accepted {
		d.decide(i, j, r)
	}
	// Debug: the queue logs each recipient's outcome, with the same reply.
	log.Debug("transaction", "rcpts", m.Rcpts, "status", r.Status, "code", r.Code, "text", r.Text, "refused", summary(d, i, refused))
	if r.Code == 0 || r.Code == 421 {
		return false
	}
	s.dirty = r.Status != Sent
	return true
}

// gone reports whether err, from the first command on a session taken from
// the idle pool, says the server closed the session while it was idle. Then
// the session is marked stale, to be replaced by a new connection. Any other
// answer shows the server alive, and ends the grace.
func (s *session) gone(err error) bool {
	if !s.reused {
		return false
	}
	s.reused = false
	s.stale = fatal(err)
	return s.stale
}

// reset ends an abandoned transaction and greets again.
func (s *session) reset(helo string) error {
	if err := s.cl.Reset(); err != nil {
		return err
	}
	s.reused = false
	if err := s.cl.Hello(helo); err != nil {
		return err
	}
	s.dirty = false
	return nil
}

// refuse checks that the host can carry message m at all. RFC 6531 and 6152
// forbid sending what needs SMTPUTF8 or 8BITMIME to a server without them.
func (s *session) refuse(m *Message) (Result, bool) {
	no := func(enhanced, format string, args ...any) (Result, bool) {
		return Result{Status: Permanent, Enhanced: enhanced, Text: fmt.Sprintf(format, args...), Host: s.host, TLS: s.tls}, true
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

// data sends the body after DATA and returns the reply to the final dot.
// Code 0 in the result means the session is unusable.
func (s *session) data(body io.Reader) Result {
	w, err := s.cl.Data()
	if err != nil {
		return s.result(err)
	}
	if _, err := io.Copy(&deadlineWriter{w: w, s: s}, body); err != nil {
		// Closing w would send the final dot and have a truncated message
		// delivered; dropping the connection aborts the transaction.
		s.close()
		return Result{Status: Transient, Enhanced: "4.4.2", Text: "sending message: " + err.Error(), Host: s.host, TLS: s.tls}
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		return s.result(err)
	}
	r := Result{Status: Sent, Code: 250, Host: s.host, TLS: s.tls}
	r.Enhanced, r.Text = splitEnhanced(resp.StatusText)
	return r
}

// deadlineWriter gives each write to the server the command timeout, as
// go-smtp sets no deadline while the body is written.
type deadlineWriter struct {
	w io.Writer
	s *session
}

func (dw *deadlineWriter) Write(p []byte) (int, error) {
	dw.s.conn.SetWriteDeadline(time.Now().Add(dw.s.cl.CommandTimeout))
	return dw.w.Write(p)
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
