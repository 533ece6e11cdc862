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
	if s.lastCR && len(b) > 0 {
		if b[0] != '\n' {
			return errBadLineEnding
		}
		s.endLine()
		b = b[1:]
	}
	// A line at a time, found by its LF: IndexByte runs far faster than a
	// search for either of two bytes, which cost a quarter of the CPU of
	// storing a large message.
	for len(b) > 0 {
		lf := bytes.IndexByte(b, '\n')
		line := b // without its CRLF
		switch {
		case lf < 0 && b[len(b)-1] == '\r':
			line = b[:len(b)-1] // the LF must open the next read
		case lf == 0 || lf > 0 && b[lf-1] != '\r':
			return errBadLineEnding
		case lf > 0:
			line = b[:lf-1]
		}
		if bytes.IndexByte(line, '\r') >= 0 {
			return errBadLineEnding
		}
		if s.lineLen += len(line); !s.inBody && s.lineLen > maxHeaderLine {
			return errLongHeader
		}
		if lf < 0 {
			s.lastCR = len(line) < len(b)
			return nil
		}
		s.endLine()
		b = b[lf+1:]
	}
	return nil
}

// endLine notes a CRLF: the empty line ends the header section.
func (s *strictCRLF) endLine() {
	s.lastCR = false
	if s.lineLen == 0 {
		s.inBody = true
	}
	s.lineLen = 0
}
