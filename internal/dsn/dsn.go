// Package dsn builds bounce messages: delivery status notifications (RFC
// 3464) in a multipart/report (RFC 6522), sent back to the envelope sender
// of a message that failed or is delayed.
package dsn

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"time"
)

// Recipient is the outcome for one recipient of the original message.
type Recipient struct {
	Addr        string    // the original recipient, e.g. "bob@example.org"
	Action      string    // "failed" or "delayed"
	Status      string    // enhanced code, e.g. "5.1.1"; class 4 when delayed
	RemoteMTA   string    // host that answered, "" if none (e.g. DNS failure)
	Diagnostic  string    // the remote reply as received, or our own reason
	LastAttempt time.Time // zero if never attempted
	// WillRetryUntil is when a delayed recipient will be given up on;
	// zero leaves the field out.
	WillRetryUntil time.Time
}

// Bounce is everything a notification says about one original message.
type Bounce struct {
	ReportingMTA string    // our host name
	ID           string    // queue id of the original message
	From         string    // original envelope sender, whom the bounce goes to
	Arrival      time.Time // when the original was received; zero if unknown
	Rcpts        []Recipient
	// Original is the original message. Only its header section is
	// returned, so that a forged sender gets no copy of the content; nil
	// leaves the third part out, which RFC 6522 allows.
	Original io.Reader
	Now      time.Time
}

const (
	subjectFailed  = "Undelivered Mail Returned to Sender"
	subjectDelayed = "Delayed Mail (still being retried)"
)

// Build renders the bounce message with CRLF line endings, no line longer
// than 998 octets. Text that came from outside (addresses, replies, host
// names) has its control characters replaced, so it can never start a
// header line of its own. It fails if the bounce must not or cannot be sent:
// a null sender (never bounce a bounce), an invalid sender, status or action.
func Build(b *Bounce) ([]byte, error) {
	to, err := check(b)
	if err != nil {
		return nil, err
	}
	var orig []byte
	if b.Original != nil {
		if orig, err = headerSection(b.Original); err != nil {
			return nil, err
		}
	}

	var msg bytes.Buffer
	// The writer outputs nothing until the first part, so its random
	// boundary (crypto/rand, 240 bits: no content can contain it except by
	// chance) can go in the header first.
	mw := multipart.NewWriter(&msg)
	subject := subjectFailed
	if allDelayed(b.Rcpts) {
		subject = subjectDelayed
	}
	msg.WriteString("From: Mail Delivery System <MAILER-DAEMON@" + b.ReportingMTA + ">\r\n")
	msg.WriteString("To: " + to + "\r\n")
	msg.WriteString("Subject: " + subject + "\r\n")
	msg.WriteString("Date: " + b.Now.Format(time.RFC1123Z) + "\r\n")
	// The random part keeps ids unique when one message bounces more than
	// once (delayed, then failed), across restarts too.
	msg.WriteString("Message-ID: <" + b.ID + ".bounce." + rand.Text() + "@" + b.ReportingMTA + ">\r\n")
	msg.WriteString("Auto-Submitted: auto-replied\r\n")
	msg.WriteString("MIME-Version: 1.0\r\n")
	msg.WriteString("Content-Type: " + mime.FormatMediaType("multipart/report", map[string]string{
		"report-type": "delivery-status",
		"boundary":    mw.Boundary(),
	}) + "\r\n")
	msg.WriteString("\r\nThis is a MIME-formatted message.\r\n")

	if err := writeParts(mw, b, orig); err != nil {
		return nil, fmt.Errorf("dsn: rendering the bounce of %s: %w", b.ID, err)
	}
	return msg.Bytes(), nil
}

func allDelayed(rcpts []Recipient) bool {
	for _, r := range rcpts {
		if r.Action != actionDelayed {
			return false
		}
	}
	return true
}
