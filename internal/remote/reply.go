package remote

import (
	"errors"
	"fmt"
	"strings"

	"github.com/emersion/go-smtp"
)

// result classifies err from a command of session s: a reply by its class,
// anything else as a lost connection.
func (s *session) result(err error) Result {
	var r Result
	var reply *smtp.SMTPError
	if errors.As(err, &reply) {
		r = replyResult(reply)
	} else {
		r = Result{Status: Transient, Enhanced: "4.4.2", Text: "connection lost: " + err.Error()}
	}
	r.Host, r.TLS = s.host, s.tls
	return r
}

// hostResult is result for a failure that sends the message on to the next
// host; the text names the host, since it may end up in a bounce or a log
// far from here.
func (s *session) hostResult(err error) Result {
	r := s.result(err)
	r.Status = Transient
	r.Text = fmt.Sprintf("%s[%s]: %s", s.host, s.addr, r.line())
	return r
}

// line is r as an SMTP reply line, "451 4.3.0 try later", for texts that
// quote a remote reply.
func (r Result) line() string {
	var b strings.Builder
	if r.Code != 0 {
		fmt.Fprintf(&b, "%d ", r.Code)
	}
	if r.Enhanced != "" {
		b.WriteString(r.Enhanced + " ")
	}
	b.WriteString(r.Text)
	return b.String()
}

// fatal reports whether err leaves the session unusable: a broken connection
// or a 421, which announces the server is closing it.
func fatal(err error) bool {
	var reply *smtp.SMTPError
	return !errors.As(err, &reply) || reply.Code == 421
}

// replyResult classifies a reply: 2xx sent, 5xx permanent, anything else
// (4xx, or a code that makes no sense here) transient.
func replyResult(e *smtp.SMTPError) Result {
	r := Result{Status: Transient, Code: e.Code, Text: e.Message}
	switch e.Code / 100 {
	case 2:
		r.Status = Sent
	case 5:
		r.Status = Permanent
	}
	ec := e.EnhancedCode
	switch {
	case ec == smtp.EnhancedCodeNotSet || ec == smtp.NoEnhancedCode:
	case ec[0] != e.Code/100:
		// "550 4.1.1" contradicts itself; the reply code is what counts.
		r.Enhanced = fmt.Sprintf("%d.0.0", e.Code/100)
	default:
		r.Enhanced = fmt.Sprintf("%d.%d.%d", ec[0], ec[1], ec[2])
	}
	return r
}

// splitEnhanced separates a leading enhanced status code ("2.0.0 Ok") from
// the text of a reply, as go-smtp does only for errors.
func splitEnhanced(text string) (enhanced, rest string) {
	code, rest, ok := strings.Cut(text, " ")
	if !ok || strings.Count(code, ".") != 2 || strings.Trim(code, "0123456789.") != "" {
		return "", text
	}
	return code, rest
}
