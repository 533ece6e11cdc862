package smtpd

import (
	"cmp"
	"errors"
	"fmt"
	"net"

	"github.com/emersion/go-smtp"

	"facteur/internal/auth"
	"facteur/internal/dnsbl"
	"facteur/internal/durable"
	"facteur/internal/header"
	"facteur/internal/rspamd"
)

// reply builds an SMTP reply whose enhanced code always has the class of
// the reply code, so a "550 4.x.x" cannot be written.
func reply(code int, subject, detail int, format string, args ...any) *smtp.SMTPError {
	return &smtp.SMTPError{
		Code:         code,
		EnhancedCode: smtp.EnhancedCode{code / 100, subject, detail},
		Message:      fmt.Sprintf(format, args...),
	}
}

// Refusals the session gives by name; the text for the client, the reason
// word for the log.
var (
	errBadLineEnding = errors.New("bare CR or LF in message data")
	errNUL           = errors.New("NUL in message data")
	errLongHeader    = errors.New("header line over 998 octets")
	errLowOnSpace    = reply(452, 3, 1, "Insufficient system storage, try again later")
	errNoRelay       = reply(530, 7, 0, "Relaying from your address needs authentication")
	errFilterDown    = errors.New("content filter unavailable")
)

// verdictReply is the refusal the checks of a message call for, nil when
// they call for none; why is shown to the sender.
func verdictReply(a auth.Action, why string) *smtp.SMTPError {
	switch a {
	case auth.Reject, auth.RejectFrom:
		return reply(550, 7, 1, "Message refused: %s", why)
	case auth.RejectSPF:
		// RFC 7372: the SPF check failed.
		return reply(550, 7, 23, "Message refused: %s", why)
	case auth.Defer:
		return reply(451, 4, 3, "%s, try again later", why)
	}
	return nil
}

// toReply is the one place where an error becomes what the client is told.
// Replies the session chose pass through; storage trouble becomes a
// temporary refusal naming the queue id, never the internal error text.
func toReply(err error, id string) *smtp.SMTPError {
	var (
		se     *smtp.SMTPError
		listed *dnsbl.Listed
		spam   *rspamd.Refusal
	)
	switch {
	case errors.As(err, &se):
		return se
	case errors.As(err, &listed):
		return reply(554, 7, 1, "Service unavailable; client [%s] listed at %s", listed.IP, listed.Zone)
	case errors.As(err, &spam) && spam.Action == rspamd.Reject:
		return reply(550, 7, 1, "%s", printable(cmp.Or(spam.Message, "Message refused as spam")))
	case errors.As(err, &spam):
		return reply(451, 7, 1, "%s", printable(cmp.Or(spam.Message, "Try again later")))
	case errors.Is(err, errFilterDown):
		return reply(451, 7, 1, "Content filter unavailable, try again later")
	case errors.Is(err, errEarlyData):
		return reply(554, 5, 0, "Error: SMTP protocol synchronization: message data sent before the 354 (RFC 2920)")
	case errors.Is(err, errBadLineEnding):
		return reply(550, 6, 0, "Message refused: bare CR or LF line ending (RFC 5321 2.3.8)")
	case errors.Is(err, errNUL):
		return reply(550, 6, 0, "Message refused: NUL character in message data (RFC 5321 4.5.2)")
	case errors.Is(err, errLongHeader):
		return reply(550, 6, 0, "Message refused: header line longer than 998 octets (RFC 5322 2.1.1)")
	case errors.Is(err, header.ErrTooLong):
		return reply(550, 6, 0, "Message refused: From: header field too long to check")
	case errors.Is(err, smtp.ErrTooLongLine):
		// go-smtp closes the connection after this reply, as it does for
		// an over-long command line.
		return reply(500, 4, 0, "Line too long, closing connection")
	case durable.IsNoSpace(err):
		return reply(452, 3, 1, "Insufficient system storage, try again later")
	case isTimeout(err):
		return reply(451, 4, 2, "Timeout while reading the message, try again")
	}
	return reply(451, 3, 0, "Local error while storing message %s, try again later", id)
}

// desync reports whether err left the client's data stream at an unknown
// point, so that what follows cannot be read as commands: the session
// hangs up after the reply.
func desync(err error) bool {
	return isTimeout(err) || errors.Is(err, smtp.ErrTooLongLine) ||
		errors.Is(err, errBadLineEnding) || errors.Is(err, errEarlyData)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
