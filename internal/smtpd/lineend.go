package smtpd

import (
	"bytes"
	"io"
)

// maxHeaderLine is RFC 5322 2.1.1's limit on a line, without its CRLF. It is
// enforced on the header section only: body lines may be as long as
// max_line_bytes, since real mail (HTML parts) often exceeds 998.
const maxHeaderLine = 998

// strictCRLF passes message data through and fails at the first:
//   - CR not followed by LF or LF not preceded by CR (errBadLineEnding).
//     Such line endings are what SMTP smuggling (CVE-2023-51764 and kin)
//     hides a second message in, so a message containing them is refused
//     whole;
//   - NUL (errNUL), which RFC 5321 4.5.2 rules out of text and some
//     readers take for the end of a line or of the message;
//   - header line over 998 octets (errLongHeader).
type strictCRLF struct {
	r       io.Reader
	lastCR  bool // the previous byte was CR, possibly in an earlier Read
	inBody  bool // the empty line ending the header section was read
	lineLen int  // octets of the current line so far, CR excluded
	err     error
}

func (s *strictCRLF) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	n, err := s.r.Read(p)
	if bad := s.check(p[:n]); bad != nil {
		s.err = bad
		return 0, s.err
	}
	if err == io.EOF && s.lastCR {
		s.err = errBadLineEnding
		return 0, s.err
	}
	return n, err
}

func (s *strictCRLF) check(b []byte) error {
	if bytes.IndexByte(b, 0) >= 0 {
		return errNUL
	}
	for len(b) > 0 {
		if s.lastCR {
			if b[0] != '\n' {
				return errBadLineEnding
			}
			s.lastCR = false
			if s.lineLen == 0 {
				s.inBody = true
			}
			s.lineLen = 0
			b = b[1:]
			continue
		}
		i := bytes.IndexAny(b, "\r\n")
		if i < 0 {
			i = len(b)
		}
		if s.lineLen += i; !s.inBody && s.lineLen > maxHeaderLine {
			return errLongHeader
		}
		if i == len(b) {
			return nil
		}
		if b[i] == '\n' {
			return errBadLineEnding
		}
		s.lastCR = true
		b = b[i+1:]
	}
	return nil
}
