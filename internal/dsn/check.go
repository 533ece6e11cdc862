package dsn

import (
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"unicode"
)

const (
	actionFailed  = "failed"
	actionDelayed = "delayed"

	// maxPath is the longest address SMTP carries (RFC 5321 4.5.3.1.3: a
	// path of 256 octets, brackets included); it also keeps the To line,
	// which cannot be folded inside an address, short.
	maxPath = 254
)

// check validates b and returns the To header value for its sender.
func check(b *Bounce) (string, error) {
	if !isDotAtom(b.ReportingMTA) {
		return "", fmt.Errorf("dsn: reporting MTA %q is not a host name", b.ReportingMTA)
	}
	if !isDotAtom(b.ID) {
		return "", fmt.Errorf("dsn: queue id %q cannot go in a Message-ID", b.ID)
	}
	if b.Now.IsZero() {
		return "", errors.New("dsn: no current time")
	}
	to, err := senderHeader(b.From)
	if err != nil {
		return "", fmt.Errorf("dsn: bounce of %s: %w", b.ID, err)
	}
	if len(b.Rcpts) == 0 {
		return "", fmt.Errorf("dsn: bounce of %s has no recipients", b.ID)
	}
	for i, r := range b.Rcpts {
		if err := checkRcpt(r); err != nil {
			return "", fmt.Errorf("dsn: bounce of %s, recipient %d: %w", b.ID, i, err)
		}
	}
	return to, nil
}

// senderHeader renders the envelope sender for the To header. The sender is
// refused rather than cleaned: a changed address would name someone else.
func senderHeader(from string) (string, error) {
	switch {
	case from == "":
		// RFC 5321 4.5.5: a message from the null sender is itself a
		// notification, and bouncing it could loop.
		return "", errors.New("null sender: no bounce")
	case len(from) > maxPath:
		return "", fmt.Errorf("sender of %d octets is too long", len(from))
	case strings.ContainsFunc(from, unicode.IsControl):
		return "", fmt.Errorf("sender %q has control characters", from)
	}
	to := (&mail.Address{Address: from}).String()
	if a, err := mail.ParseAddress(to); err != nil || a.Address != from {
		return "", fmt.Errorf("sender %q is not an address", from)
	}
	return to, nil
}

func checkRcpt(r Recipient) error {
	if r.Addr == "" {
		return errors.New("no address")
	}
	class, ok := statusClass(r.Status)
	if !ok {
		return fmt.Errorf("status %q is not an enhanced status code", r.Status)
	}
	switch {
	case r.Action == actionDelayed && class != '4':
		return fmt.Errorf("delayed with status %s, not a temporary one", r.Status)
	case r.Action == actionFailed && class != '4' && class != '5':
		// 4.x.x is fine: a temporary failure that outlived the retries.
		return fmt.Errorf("failed with status %s", r.Status)
	case r.Action != actionDelayed && r.Action != actionFailed:
		return fmt.Errorf("action %q is neither %q nor %q", r.Action, actionFailed, actionDelayed)
	}
	return nil
}

// statusClass returns the class digit of an RFC 3463 code: class "."
// subject "." detail, subject and detail of 1 to 3 digits.
func statusClass(s string) (byte, bool) {
	parts := strings.Split(s, ".")
	if len(parts) != 3 || len(parts[0]) != 1 {
		return 0, false
	}
	for _, p := range parts {
		if len(p) < 1 || len(p) > 3 || strings.Trim(p, "0123456789") != "" {
			return 0, false
		}
	}
	return s[0], true
}

// isDotAtom reports whether s is an RFC 5322 dot-atom-text, what both halves
// of a Message-ID and the domain of MAILER-DAEMON@host must be.
func isDotAtom(s string) bool {
	for _, atom := range strings.Split(s, ".") {
		if atom == "" {
			return false
		}
		for i := 0; i < len(atom); i++ {
			c := atom[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
				strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0) {
				return false
			}
		}
	}
	return true
}
