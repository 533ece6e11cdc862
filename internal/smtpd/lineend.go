package smtpd

import (
	"bytes"
	"io"
)

// strictCRLF passes message data through and fails with errBadLineEnding
// at the first CR not followed by LF or LF not preceded by CR. Such line
// endings are what SMTP smuggling (CVE-2023-51764 and kin) hides a second
// message in, so a message containing them is refused whole.
type strictCRLF struct {
	r      io.Reader
	lastCR bool // the previous byte was CR, possibly in an earlier Read
	err    error
}

func (s *strictCRLF) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	n, err := s.r.Read(p)
	if bad := s.check(p[:n]); bad {
		s.err = errBadLineEnding
		return 0, s.err
	}
	if err == io.EOF && s.lastCR {
		s.err = errBadLineEnding
		return 0, s.err
	}
	return n, err
}

func (s *strictCRLF) check(b []byte) bool {
	for len(b) > 0 {
		if s.lastCR {
			if b[0] != '\n' {
				return true
			}
			s.lastCR = false
			b = b[1:]
			continue
		}
		i := bytes.IndexAny(b, "\r\n")
		if i < 0 {
			return false
		}
		if b[i] == '\n' {
			return true
		}
		s.lastCR = true
		b = b[i+1:]
	}
	return false
}
