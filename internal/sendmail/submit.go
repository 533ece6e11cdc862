package sendmail

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"facteur/internal/sysexits"
)

// ErrNotRunning means nothing answered on the relay listener.
var ErrNotRunning = errors.New("facteur is not running")

// Refusal is a recipient the server would not take, and its reply.
type Refusal struct {
	Rcpt string
	Err  error // the server's *smtp.SMTPError
}

// Reply is the server's reply as sent: "550 5.1.1 <x@y>: no such user here".
func (r Refusal) Reply() string {
	var se *smtp.SMTPError
	if !errors.As(r.Err, &se) {
		return r.Err.Error()
	}
	return fmt.Sprintf("%d %s %s", se.Code, r.status(), se.Message)
}

// Later reports whether the refusal may pass later: a 4xx reply, or none
// (the connection failed in a later round of Send).
func (r Refusal) Later() bool {
	var se *smtp.SMTPError
	return !errors.As(r.Err, &se) || se.Code/100 == 4
}

// Later reports whether err, from Submit, may pass later: a 4xx reply
// (the server is shutting down, its disk is full...) or no server.
func Later(err error) bool {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se.Code/100 == 4
	}
	return errors.Is(err, ErrNotRunning)
}

// status is the reply's enhanced status code, or its class's generic one.
func (r Refusal) status() string {
	var se *smtp.SMTPError
	switch {
	case !errors.As(r.Err, &se):
		return "5.0.0"
	case se.EnhancedCode[0] > 0:
		return fmt.Sprintf("%d.%d.%d", se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2])
	}
	return fmt.Sprintf("%d.0.0", se.Code/100)
}

// Delivery is what the server did with a message it accepted.
type Delivery struct {
	ID      string    // the queue id of its 250, "" if it named none
	Refused []Refusal // the recipients it would not take
}

// RefusedError means the server took none of the recipients.
type RefusedError struct{ Refused []Refusal }

func (e *RefusedError) Error() string {
	var b strings.Builder
	for i, r := range e.Refused {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "<%s>: %s", r.Rcpt, r.Reply())
	}
	return b.String()
}

// Submit hands m to the server's relay listener at addr. As with Postfix's
// sendmail, one refused recipient does not stop the others: those the
// server takes get the message, and the refused ones are listed in the
// Delivery. The error says why nobody gets it: the server is not running,
// or refused the sender, every recipient (a *RefusedError) or the message.
func Submit(addr string, m *Message) (*Delivery, error) {
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, fmt.Errorf("%w (%v)", ErrNotRunning, err)
	}
	conn.SetDeadline(time.Now().Add(5 * time.Minute))
	c := smtp.NewClient(conn)
	defer c.Close()
	if err := c.Hello("localhost"); err != nil {
		return nil, err
	}
	opts := &smtp.MailOptions{}
	if !ascii(m.From) || !allASCII(m.Rcpts) {
		opts.UTF8 = true
	}
	if err := c.Mail(m.From, opts); err != nil {
		return nil, fmt.Errorf("sender <%s>: %w", m.From, err)
	}
	d := &Delivery{}
	for _, r := range m.Rcpts {
		if err := c.Rcpt(r, nil); err != nil {
			var se *smtp.SMTPError
			if !errors.As(err, &se) {
				return nil, fmt.Errorf("recipient <%s>: %w", r, err)
			}
			d.Refused = append(d.Refused, Refusal{Rcpt: r, Err: err})
		}
	}
	if len(d.Refused) == len(m.Rcpts) {
		return nil, &RefusedError{Refused: d.Refused}
	}
	w, err := c.Data()
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(m.Data); err != nil {
		return nil, err
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		return nil, err
	}
	// "250 2.0.0 Ok: queued as ID"
	if _, id, ok := strings.Cut(resp.StatusText, "queued as "); ok {
		d.ID = strings.TrimSpace(id)
	}
	c.Quit()
	return d, nil
}

// Send is Submit, then Submit again for the recipients the server put off
// (4xx) while it took others: a server that takes so many recipients a
// transaction (452 4.5.3, RFC 5321 4.5.3.1.10) takes the rest in the
// next ones. Each round takes at least one recipient, so it ends. The
// Delivery's Refused are those refused for good, and those put off in
// the last round, whose Err says why (Later).
func Send(addr string, m *Message) (*Delivery, error) {
	d, err := Submit(addr, m)
	if err != nil {
		return nil, err
	}
	out := &Delivery{ID: d.ID}
	for {
		var later []string
		for _, r := range d.Refused {
			if r.Later() {
				later = append(later, r.Rcpt)
			} else {
				out.Refused = append(out.Refused, r)
			}
		}
		if len(later) == 0 {
			return out, nil
		}
		d, err = Submit(addr, &Message{From: m.From, Rcpts: later, Data: m.Data})
		var re *RefusedError
		switch {
		case errors.As(err, &re):
			out.Refused = append(out.Refused, re.Refused...)
			return out, nil
		case err != nil:
			for _, r := range later {
				out.Refused = append(out.Refused, Refusal{Rcpt: r, Err: err})
			}
			return out, nil
		}
	}
}

// ExitCode maps a submission error to what sendmail callers expect.
func ExitCode(err error) int {
	var se *smtp.SMTPError
	var re *RefusedError
	switch {
	case err == nil:
		return sysexits.OK
	case errors.As(err, &re):
		// Worth trying again when one refusal may pass later.
		code := ExitCode(re.Refused[0].Err)
		for _, r := range re.Refused {
			if ExitCode(r.Err) == sysexits.TempFail {
				return sysexits.TempFail
			}
		}
		return code
	case errors.As(err, &se) && se.Code/100 == 4:
		return sysexits.TempFail
	case errors.As(err, &se) && (se.EnhancedCode[1] == 1 || se.Code == 550 || se.Code == 553):
		return sysexits.NoUser
	case errors.As(err, &se):
		return sysexits.Unavailable
	}
	// Not running, connection broken: the caller may try again.
	return sysexits.TempFail
}

func ascii(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func allASCII(ss []string) bool {
	for _, s := range ss {
		if !ascii(s) {
			return false
		}
	}
	return true
}
