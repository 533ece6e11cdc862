package remote

import (
	"errors"
	"strings"
)

// path returns addr as it goes between "<" and ">" of MAIL and RCPT.
// It is written as it is, so a local part that is not a dot-atom ("john doe", "a..b") must be quoted here (RFC 5321 4.1.2).
func path(addr string) (string, error) {
	for _, r := range addr {
		if r < 0x20 || r == 0x7f {
			return "", errors.New("control character in address")
		}
	}
	if addr == "" {
		return "", nil // the null sender
	}
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return "", errors.New("address without domain")
	}
	local, domain := addr[:at], addr[at:]
	if isDotAtom(local) {
		return addr, nil
	}
	var b strings.Builder
	b.WriteByte('"')
	// Byte by byte: ranging over runes would turn invalid UTF-8 into
	// U+FFFD and send an address other than the one queued.
	for i := 0; i < len(local); i++ {
		if local[i] == '"' || local[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(local[i])
	}
	b.WriteByte('"')
	return b.String() + domain, nil
}

// isDotAtom reports whether s is atoms joined by single dots; non-ASCII
// counts as atext, as RFC 6531 extends it.
func isDotAtom(s string) bool {
	if s == "" {
		return false
	}
	for _, atom := range strings.Split(s, ".") {
		if atom == "" {
			return false
		}
		for _, r := range atom {
			if !isAtext(r) {
				return false
			}
		}
	}
	return true
}

func isAtext(r rune) bool {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r >= 0x80:
		return true
	}
	return strings.ContainsRune("!#$%&'*+-/=?^_`{|}~", r)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
