package remote

import (
	"cmp"
	"fmt"
	"strconv"
	"strings"

	"github.com/emersion/go-smtp"
)

// hostResult is r for a failure that sends the message on to the next
// host; the text names the host, since it may end up in a bounce or a log
// far from here.
func (s *session) hostResult(r Result) Result {
	r.Status = Transient
	r.Text = s.name() + ": " + r.line()
	return r
}

// name is the host and address the session is with, as texts name it:
// "mx.example.org[192.0.2.1]", or the LMTP server's address alone.
func (s *session) name() string {
	if !s.addr.IsValid() {
		return s.host
	}
	return fmt.Sprintf("%s[%s]", s.host, s.addr)
}

// heldBack is the result of the messages s did not try because it ended
// early: it names the host and, when the server ended it, how.
func (s *session) heldBack() Result {
	why := "ended early"
	if s.failure.Status != 0 {
		why = "ended: " + s.failure.line()
	}
	r := s.stamp(Result{Status: Transient, Enhanced: cmp.Or(s.failure.Enhanced, "4.4.2")})
	r.Text = fmt.Sprintf("not tried: the session with %s %s", s.name(), why)
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

// fatal reports whether r, a reply on a session or the loss of one, leaves
// the session unusable: a broken connection or a 421, which announces the
// server is closing it.
func (r Result) fatal() bool { return r.Code == 0 || r.Code == 421 }

// replyResult classifies a reply go-smtp's Client turned into an error.
func replyResult(e *smtp.SMTPError) Result {
	enhanced := ""
	if ec := e.EnhancedCode; ec != smtp.EnhancedCodeNotSet && ec != smtp.NoEnhancedCode {
		enhanced = fmt.Sprintf("%d.%d.%d", ec[0], ec[1], ec[2])
	}
	return newReply(e.Code, enhanced, e.Message)
}

// newReply classifies a reply: 2xx sent, 5xx permanent, anything else (4xx,
// or a code that makes no sense here) transient.
func newReply(code int, enhanced, text string) Result {
	r := Result{Status: Transient, Code: code, Enhanced: enhanced, Text: text}
	switch code / 100 {
	case 2:
		r.Status = Sent
	case 5:
		r.Status = Permanent
	}
	if class, _, _ := strings.Cut(enhanced, "."); enhanced != "" && class != strconv.Itoa(code/100) {
		// "550 4.1.1" contradicts itself; the reply code is what counts.
		r.Enhanced = fmt.Sprintf("%d.0.0", code/100)
	}
	return r
}

// splitEnhanced separates a leading enhanced status code ("2.0.0 Ok") from
// the text of a reply.
func splitEnhanced(text string) (enhanced, rest string) {
	code, rest, ok := strings.Cut(text, " ")
	if !ok || strings.Count(code, ".") != 2 || strings.Trim(code, "0123456789.") != "" {
		return "", text
	}
	return code, rest
}
