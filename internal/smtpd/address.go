package smtpd

import (
	"strings"

	"github.com/emersion/go-smtp"

	"facteur/internal/srs"
)

// RFC 5321 4.5.3.1.1 and 4.5.3.1.2.
const (
	maxLocalPart = 64
	maxDomain    = 255
	// An SRS address holds a whole address in its local part, so a
	// bounce to the address we forwarded a long one from may exceed
	// maxLocalPart: it is taken, as RFC 5321 asks of longer local parts
	// where possible.
	maxSRSLocal = 32 + maxLocalPart + maxDomain
)

// splitAddress takes a path as go-smtp hands it over (brackets and source
// route already removed, a quoted local part unquoted) and splits it at the
// last '@': whatever else the local part holds ("a@b", "x%y", "../z") stays
// in the local part, which is only ever compared with the users map.
func splitAddress(addr string) (local, domain string, err *smtp.SMTPError) {
	i := strings.LastIndexByte(addr, '@')
	if i <= 0 || i == len(addr)-1 {
		return "", "", reply(501, 1, 3, "Bad address syntax <%s>", printable(addr))
	}
	local, domain = addr[:i], strings.TrimSuffix(strings.ToLower(addr[i+1:]), ".")
	switch {
	case len(local) > maxLocalPart && !(srs.Is(local) && len(local) <= maxSRSLocal):
		return "", "", reply(501, 1, 3, "Local part longer than %d octets", maxLocalPart)
	case len(domain) > maxDomain || domain == "":
		return "", "", reply(501, 1, 3, "Domain empty or longer than %d octets", maxDomain)
	case hasControl(addr):
		return "", "", reply(501, 1, 3, "Control characters in address")
	}
	return local, domain, nil
}

func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// printable makes client-chosen text safe to echo in a reply or a log.
func printable(s string) string {
	const max = 100
	if len(s) > max {
		s = s[:max] + "..."
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}

// needUTF8 refuses an address with 8-bit octets in a transaction that did
// not say SMTPUTF8 on MAIL: RFC 6531 3.4 (553 5.6.7). Without the check such
// an address would pass to a Maildir header or a remote server that never
// agreed to it.
func needUTF8(addr string, utf8 bool) *smtp.SMTPError {
	if utf8 {
		return nil
	}
	for i := 0; i < len(addr); i++ {
		if addr[i] >= 0x80 {
			return reply(553, 6, 7, "Non-ASCII address <%s> needs SMTPUTF8", printable(addr))
		}
	}
	return nil
}
