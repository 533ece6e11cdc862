package smtpd

import (
	"crypto/tls"
	"fmt"
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
	var b strings.Builder
	// RFC 3848: ESMTP, plus S for TLS, plus A for an authenticated client.
	proto := "ESMTP"
	if t.tls != nil {
		proto += "S"
	}
	if t.auth {
		proto += "A"
	}
	fmt.Fprintf(&b, "Received: from %s ([%s])\r\n\tby %s (facteur) with %s id %s",
		printable(strings.Map(dropSpace, t.helo)), t.ip, t.hostname, proto, t.id)
	if t.tls != nil {
		fmt.Fprintf(&b, "\r\n\t(%s %s)", tls.VersionName(t.tls.Version), tls.CipherSuiteName(t.tls.CipherSuite))
	}
	if t.rcpt != "" {
		fmt.Fprintf(&b, "\r\n\tfor <%s>", printable(t.rcpt))
	}
	fmt.Fprintf(&b, ";\r\n\t%s\r\n", t.at.Format(time.RFC1123Z))
	return b.String()
}

func dropSpace(r rune) rune {
	if r == ' ' || r == '\t' || r == '(' || r == ')' {
		return -1
	}
	return r
}
