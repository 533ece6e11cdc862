package sendmail

import (
	"bufio"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"strings"
	"time"
)

// Message is what goes to the server.
type Message struct {
	From  string
	Rcpts []string
	Data  []byte // CRLF line endings
}

// ErrNoRecipients: neither arguments nor (with -t) headers named anyone.
var ErrNoRecipients = errors.New("no recipients: give them as arguments, or use -t")

// field is one header field, its continuation lines included.
type field struct {
	name  string // lower case
	lines []string
}

func (f field) value() string {
	v := strings.Join(f.lines, " ")
	_, v, _ = strings.Cut(v, ":")
	return strings.TrimSpace(v)
}

// Compose reads the message from r the way sendmail does and completes
// it: line endings become CRLF; unless IgnoreDots, a line holding a single
// dot ends it; From, Date and Message-ID are added when missing; with
// FromHeaders the To, Cc and Bcc addresses become recipients and Bcc is
// removed, so no recipient sees the others' blind copies.
func Compose(r io.Reader, o Options, sender, hostname string, now time.Time) (*Message, error) {
	lines, err := readLines(r, o.IgnoreDots)
	if err != nil {
		return nil, err
	}
	fields, body := splitHeader(lines)
	rcpts := append([]string(nil), o.Rcpts...)
	var kept []field
	has := map[string]bool{}
	for _, f := range fields {
		has[f.name] = true
		if o.FromHeaders && (f.name == "to" || f.name == "cc" || f.name == "bcc") && f.value() != "" {
			list, err := mail.ParseAddressList(f.value())
			if err != nil {
				return nil, fmt.Errorf("%s: header: %w", f.name, err)
			}
			for _, a := range list {
				rcpts = append(rcpts, a.Address)
			}
		}
		if f.name == "bcc" {
			continue
		}
		kept = append(kept, f)
	}
	rcpts = dedupe(rcpts)
	if len(rcpts) == 0 {
		return nil, ErrNoRecipients
	}
	var b strings.Builder
	for _, f := range kept {
		for _, l := range f.lines {
			b.WriteString(l + "\r\n")
		}
	}
	if !has["from"] {
		b.WriteString("From: " + (&mail.Address{Name: o.FullName, Address: sender}).String() + "\r\n")
	}
	if !has["date"] {
		b.WriteString("Date: " + now.Format(time.RFC1123Z) + "\r\n")
	}
	if !has["message-id"] {
		b.WriteString("Message-ID: <" + now.UTC().Format("20060102150405") + "." + rand.Text()[:12] + "@" + hostname + ">\r\n")
	}
	b.WriteString("\r\n")
	for _, l := range body {
		b.WriteString(l + "\r\n")
	}
	return &Message{From: sender, Rcpts: rcpts, Data: []byte(b.String())}, nil
}

// readLines reads the input, dropping each line's LF or CRLF.
func readLines(r io.Reader, ignoreDots bool) ([]string, error) {
	br := bufio.NewReader(r)
	var lines []string
	for {
		line, err := br.ReadString('\n')
		if err != nil && err != io.EOF {
			return nil, fmt.Errorf("reading the message: %w", err)
		}
		if line == "" && err == io.EOF {
			return lines, nil
		}
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		if !ignoreDots && line == "." {
			return lines, nil
		}
		lines = append(lines, line)
		if err == io.EOF {
			return lines, nil
		}
	}
}

// splitHeader separates the header fields from the body. Input that does
// not start with a header field is all body, as sendmail treats it.
func splitHeader(lines []string) ([]field, []string) {
	var fields []field
	for i, l := range lines {
		switch {
		case l == "":
			return fields, lines[i+1:]
		case (l[0] == ' ' || l[0] == '\t') && len(fields) > 0:
			fields[len(fields)-1].lines = append(fields[len(fields)-1].lines, l)
		case isFieldStart(l):
			name, _, _ := strings.Cut(l, ":")
			fields = append(fields, field{name: strings.ToLower(name), lines: []string{l}})
		default:
			return fields, lines[i:]
		}
	}
	return fields, nil
}

func isFieldStart(l string) bool {
	name, _, ok := strings.Cut(l, ":")
	if !ok || name == "" {
		return false
	}
	for _, c := range []byte(name) {
		if c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

func dedupe(addrs []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, a := range addrs {
		a = strings.TrimSpace(strings.Trim(strings.TrimSpace(a), "<>"))
		if k := strings.ToLower(a); a != "" && !seen[k] {
			seen[k] = true
			out = append(out, a)
		}
	}
	return out
}
