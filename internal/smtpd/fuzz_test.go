package smtpd

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"facteur/internal/smtptest"
)

func FuzzSplitAddress(f *testing.F) {
	for _, s := range []string{"alice@example.test", "a@b@evil.org", "@x", "x@", "\"q\"@d", "a@D.", "é@ü.test",
		strings.Repeat("a", 65) + "@d", "a@" + strings.Repeat("d", 256), "a\x00@d", "a@d\r\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, addr string) {
		local, domain, err := splitAddress(addr)
		if err != nil {
			if err.Code != 501 || err.EnhancedCode != [3]int{5, 1, 3} {
				t.Fatalf("%q: reply %d %v", addr, err.Code, err.EnhancedCode)
			}
			return
		}
		switch {
		case local == "" || len(local) > maxLocalPart:
			t.Fatalf("%q: local part %q", addr, local)
		case domain == "" || len(domain) > maxDomain || strings.Contains(domain, "@"):
			t.Fatalf("%q: domain %q", addr, domain)
		case hasControl(local) || hasControl(domain):
			t.Fatalf("%q: control characters passed", addr)
		case domain != strings.TrimSuffix(strings.ToLower(addr[len(local)+1:]), "."):
			t.Fatalf("%q: domain %q is not what follows the last @", addr, domain)
		case !strings.HasPrefix(addr, local+"@"):
			t.Fatalf("%q: local part %q is not what precedes the last @", addr, local)
		}
	})
}

// refData is strictCRLF's rule written the slow, obvious way, on the whole
// message at once.
func refData(b []byte) error {
	if bytes.IndexByte(b, 0) >= 0 {
		return errNUL
	}
	inBody := false
	for len(b) > 0 {
		i := bytes.Index(b, []byte("\r\n"))
		line := b
		if i >= 0 {
			line = b[:i]
		}
		if bytes.ContainsAny(line, "\r\n") {
			return errBadLineEnding
		}
		if !inBody && len(line) > maxHeaderLine {
			return errLongHeader
		}
		if i < 0 {
			return nil
		}
		if len(line) == 0 {
			inBody = true
		}
		b = b[i+2:]
	}
	return nil
}

func FuzzStrictCRLF(f *testing.F) {
	for _, s := range []string{"Subject: a\r\n\r\nbody\r\n", "a\nb", "a\r.\r", "x\r\n\n.\n", "\r", "\x00",
		"H: " + strings.Repeat("h", 996) + "\r\n\r\n" + strings.Repeat("b", 2000) + "\r\n"} {
		f.Add([]byte(s), uint16(1))
	}
	f.Fuzz(func(t *testing.T, data []byte, chunk uint16) {
		// Read in chunks of a fuzzed size, one byte at a time when 0, so
		// that state carried across reads is exercised.
		var r io.Reader = bytes.NewReader(data)
		if chunk == 0 {
			r = iotest.OneByteReader(r)
		} else {
			r = smtptest.Chunked(data, int(chunk))
		}
		got, err := io.ReadAll(&strictCRLF{r: r})
		want := refData(data)
		// With several faults, which one is named depends on the chunks.
		if (err == nil) != (want == nil) || want != nil && !errors.Is(err, errBadLineEnding) && !errors.Is(err, errNUL) && !errors.Is(err, errLongHeader) {
			t.Fatalf("%q (chunks of %d): got %v, want %v", data, chunk, err, want)
		}
		if err == nil && !bytes.Equal(got, data) {
			t.Fatalf("%q: passed through as %q", data, got)
		}
	})
}
