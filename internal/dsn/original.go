package dsn

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"
)

// maxHeader bounds the original header section returned: enough for any
// honest message, and a bounce is no amplifier for a huge one.
const maxHeader = 64 << 10

// unsafe8bit replaces, byte by byte so as to keep any 8-bit charset
// intact, what MIME forbids in 8bit content.
var unsafe8bit = strings.NewReplacer("\x00", " ", "\r", " ")

// headerSection reads the original message's header section, up to its
// first empty line and at most maxHeader octets of whole lines, with CRLF
// line endings. A bare LF ends a line too, since the spool may hold either.
// NUL and stray CR become spaces, and a line over the limit is folded.
func headerSection(r io.Reader) ([]byte, error) {
	br := bufio.NewReader(io.LimitReader(r, maxHeader))
	var out bytes.Buffer
	read := 0
	for {
		line, err := br.ReadString('\n')
		if err != nil && err != io.EOF {
			return nil, fmt.Errorf("dsn: reading the original header: %w", err)
		}
		read += len(line)
		if err == io.EOF && read == maxHeader {
			// The limit cut this line: leave it out.
			break
		}
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		if line == "" {
			break
		}
		out.WriteString(fold(unsafe8bit.Replace(line), maxLine))
		if err == io.EOF {
			break
		}
	}
	return out.Bytes(), nil
}
