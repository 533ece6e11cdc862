package dsn

import (
	"fmt"
	"io"
	"mime/multipart"
	"mime/quotedprintable"
	"net/textproto"
	"strings"
	"time"
)

// writeParts writes the three parts of the report and closes mw.
func writeParts(mw *multipart.Writer, b *Bounce, orig []byte) error {
	// Quoted-printable keeps a long reply verbatim for the reader while no
	// encoded line exceeds 76 octets, and any UTF-8 in it 7-bit clean.
	w, err := mw.CreatePart(textproto.MIMEHeader{
		"Content-Type":              {"text/plain; charset=utf-8"},
		"Content-Description":       {"Notification"},
		"Content-Transfer-Encoding": {"quoted-printable"},
	})
	if err != nil {
		return err
	}
	qp := quotedprintable.NewWriter(w)
	if _, err := io.WriteString(qp, explanation(b)); err != nil {
		return err
	}
	if err := qp.Close(); err != nil {
		return err
	}

	status := deliveryStatus(b)
	if err := writePart(mw, "message/delivery-status", "Delivery report", status); err != nil {
		return err
	}
	if b.Original != nil {
		if err := writePart(mw, "text/rfc822-headers", "Undelivered message header", string(orig)); err != nil {
			return err
		}
	}
	return mw.Close()
}

// writePart writes a part whose content is already in lines of CRLF, at
// most 998 octets: 7bit, or 8bit if any octet needs it.
func writePart(mw *multipart.Writer, contentType, description, content string) error {
	cte := "7bit"
	if strings.ContainsFunc(content, func(r rune) bool { return r >= 0x80 }) {
		cte = "8bit"
	}
	w, err := mw.CreatePart(textproto.MIMEHeader{
		"Content-Type":              {contentType},
		"Content-Description":       {description},
		"Content-Transfer-Encoding": {cte},
	})
	if err != nil {
		return err
	}
	_, err = io.WriteString(w, content)
	return err
}

// explanation is the text for people: what happened to each recipient, in
// the remote server's own words when there are some.
func explanation(b *Bounce) string {
	var s strings.Builder
	fmt.Fprintf(&s, "This is the mail system at host %s.\r\n\r\n", b.ReportingMTA)
	if allDelayed(b.Rcpts) {
		s.WriteString("Your message has not been delivered yet to the recipients below.\r\n")
		s.WriteString("Delivery is still being retried: there is no need to send it again.\r\n")
	} else {
		s.WriteString("Your message could not be delivered to one or more recipients.\r\n")
	}
	s.WriteString("A delivery report follows")
	if b.Original != nil {
		s.WriteString(", then the header of your message")
	}
	s.WriteString(".\r\n\r\n")
	for _, r := range b.Rcpts {
		fmt.Fprintf(&s, "<%s>: ", clean(r.Addr))
		if r.Action == actionDelayed {
			s.WriteString("not delivered yet, still being retried")
		} else {
			s.WriteString("delivery failed")
		}
		fmt.Fprintf(&s, " (%s)", r.Status)
		switch {
		case r.Diagnostic == "":
			s.WriteString(".")
		case r.RemoteMTA != "":
			fmt.Fprintf(&s, "; %s said: %s", clean(r.RemoteMTA), clean(r.Diagnostic))
		default:
			fmt.Fprintf(&s, ": %s", clean(r.Diagnostic))
		}
		s.WriteString("\r\n\r\n")
	}
	return s.String()
}

// deliveryStatus is the machine-readable report (RFC 3464 2.2 and 2.3).
func deliveryStatus(b *Bounce) string {
	var s strings.Builder
	s.WriteString(field("Reporting-MTA", "dns; "+b.ReportingMTA))
	s.WriteString(field("X-Queue-ID", b.ID))
	if !b.Arrival.IsZero() {
		s.WriteString(field("Arrival-Date", b.Arrival.Format(time.RFC1123Z)))
	}
	for _, r := range b.Rcpts {
		s.WriteString("\r\n")
		s.WriteString(field("Final-Recipient", "rfc822; "+clean(r.Addr)))
		s.WriteString(field("Action", r.Action))
		s.WriteString(field("Status", r.Status))
		if r.RemoteMTA != "" {
			s.WriteString(field("Remote-MTA", "dns; "+clean(r.RemoteMTA)))
		}
		if r.Diagnostic != "" {
			d := clean(r.Diagnostic)
			s.WriteString(field("Diagnostic-Code", diagnosticType(d)+"; "+d))
		}
		if !r.LastAttempt.IsZero() {
			s.WriteString(field("Last-Attempt-Date", r.LastAttempt.Format(time.RFC1123Z)))
		}
		if r.Action == actionDelayed && !r.WillRetryUntil.IsZero() {
			s.WriteString(field("Will-Retry-Until", r.WillRetryUntil.Format(time.RFC1123Z)))
		}
	}
	return s.String()
}

// diagnosticType is "smtp" for an SMTP reply, which starts with its code,
// and ours for our own reasons (no MX, a timeout): calling those smtp would
// mislead software that reads the code from the text.
func diagnosticType(d string) string {
	if len(d) >= 3 && strings.IndexByte("2345", d[0]) >= 0 &&
		'0' <= d[1] && d[1] <= '9' && '0' <= d[2] && d[2] <= '9' &&
		(len(d) == 3 || d[3] == ' ' || d[3] == '-') {
		return "smtp"
	}
	return "x-facteur"
}
