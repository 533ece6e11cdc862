package smtpd

import (
	"crypto/tls"
	"net/netip"
	"strings"
	"time"
)

// traceHeaders are the lines prepended to a message delivered here:
// Return-Path (RFC 5321 4.4, added at final delivery only) and Received.
type trace struct {
	helo     string
	ip       netip.Addr
	hostname string
	tls      *tls.ConnectionState
	id       string
	rcpt     string // "" unless there is exactly one recipient
	auth     bool   // the client logged in
	at       time.Time
}

// received renders the Received: header (RFC 5321 4.4, with the protocol
// names of RFC 3848), folded so that no line is long.
func (t trace) received() string {
	// Built with WriteString rather than fmt: this runs for every message,
	// and fmt's reflection was 2 % of the inbound CPU profile.
	var b strings.Builder
	b.Grow(256)
	b.WriteString("Received: from ")
	b.WriteString(printable(strings.Map(dropSpace, t.helo)))
	b.WriteString(" ([")
	b.WriteString(t.ip.String())
	b.WriteString("])\r\n\tby ")
	b.WriteString(t.hostname)
	// RFC 3848: ESMTP, plus S for TLS, plus A for an authenticated client.
	b.WriteString(" (facteur) with ESMTP")
	if t.tls != nil {
		b.WriteString("S")
	}
	if t.auth {
		b.WriteString("A")
	}
	b.WriteString(" id ")
	b.WriteString(t.id)
	if t.tls != nil {
		b.WriteString("\r\n\t(")
		b.WriteString(tls.VersionName(t.tls.Version))
		b.WriteString(" ")
		b.WriteString(tls.CipherSuiteName(t.tls.CipherSuite))
		b.WriteString(")")
	}
	if t.rcpt != "" {
		b.WriteString("\r\n\tfor <")
		b.WriteString(printable(t.rcpt))
		b.WriteString(">")
	}
	b.WriteString(";\r\n\t")
	b.WriteString(t.at.Format(time.RFC1123Z))
	b.WriteString("\r\n")
	return b.String()
}

func dropSpace(r rune) rune {
	if r == ' ' || r == '\t' || r == '(' || r == ')' {
		return -1
	}
	return r
}
