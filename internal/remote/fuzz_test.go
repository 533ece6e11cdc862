package remote

import (
	"bufio"
	"bytes"
	"fmt"
	"net/textproto"
	"strconv"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"
)

// unquote undoes path's quoting of the local part, as a receiving server
// reads it (RFC 5321 4.1.2 Quoted-string).
func unquote(p string) (string, bool) {
	if !strings.HasPrefix(p, `"`) {
		return p, true
	}
	var b strings.Builder
	for i := 1; i < len(p); i++ {
		switch p[i] {
		case '\\':
			if i+1 == len(p) {
				return "", false
			}
			i++
			b.WriteByte(p[i])
		case '"':
			if i+1 >= len(p) || p[i+1] != '@' {
				return "", false // the quoted string must end right before the @
			}
			return b.String() + p[i+1:], true
		default:
			b.WriteByte(p[i])
		}
	}
	return "", false
}

func FuzzPath(f *testing.F) {
	for _, s := range []string{"", "alice@example.test", "john doe@x", `say "hi"@x`, `a\b@x`, "a@b@c", "@x", "a..b@x", "é@x", "a\r\n@x", "nodomain"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, addr string) {
		p, err := path(addr)
		if err != nil {
			return
		}
		for i := 0; i < len(p); i++ {
			if p[i] < 0x20 || p[i] == 0x7f {
				t.Fatalf("path(%q) = %q holds a control character", addr, p)
			}
		}
		back, ok := unquote(p)
		if !ok || back != addr {
			t.Fatalf("path(%q) = %q reads back as %q (%v)", addr, p, back, ok)
		}
	})
}

// FuzzReply checks the classification of any reply a remote server can
// send, as go-smtp's Client reports it at greeting and EHLO and as the
// transactions read it off the wire: the status follows the reply code's
// class and the enhanced code quoted never contradicts it.
func FuzzReply(f *testing.F) {
	f.Add(250, 2, 0, 0, "2.0.0 Ok")
	f.Add(550, 4, 1, 1, "user unknown")
	f.Add(550, 25, 1, 1, "25.1.1 user unknown")
	f.Add(451, 0, 0, 0, "")
	f.Add(999, -1, -1, -1, "1.2.3")
	f.Fuzz(func(t *testing.T, code, c1, c2, c3 int, text string) {
		check := func(how string, r Result) {
			want := Transient
			switch code / 100 {
			case 2:
				want = Sent
			case 5:
				want = Permanent
			}
			if r.Status != want {
				t.Fatalf("%s: code %d: status %v, want %v", how, code, r.Status, want)
			}
			if r.Enhanced != "" && !strings.HasPrefix(r.Enhanced, strconv.Itoa(code/100)+".") {
				t.Fatalf("%s: code %d: enhanced %q contradicts it", how, code, r.Enhanced)
			}
		}
		check("go-smtp", replyResult(&smtp.SMTPError{Code: code, EnhancedCode: smtp.EnhancedCode{c1, c2, c3}, Message: text}))
		if code >= 100 && code <= 999 && !strings.ContainsAny(text, "\r\n") {
			s := &session{wire: wire{r: textproto.NewReader(bufio.NewReader(strings.NewReader(fmt.Sprintf("%d %s\r\n", code, text))))}}
			r, err := s.reply()
			if err != nil {
				t.Fatalf("reply %d %q: %v", code, text, err)
			}
			if r.Code != code {
				t.Fatalf("reply %d %q read as code %d", code, text, r.Code)
			}
			check("wire", r)
		}
		enh, rest := splitEnhanced(text)
		if enh != "" && enh+" "+rest != text {
			t.Fatalf("splitEnhanced(%q) = %q, %q", text, enh, rest)
		}
	})
}

// FuzzDotWriter checks the DATA encoding of any message, written in two
// pieces: it is textproto's byte for byte wherever every CR is followed by
// LF (textproto doubles a CR before CRLF), and for any input the data ends
// with the final dot and nowhere before it.
func FuzzDotWriter(f *testing.F) {
	for _, s := range []string{"", ".", "a\r\n.\r\nb", ".a\r\n..b\r\n", "a\nb\n.\n", "x\r", "\r\n\r\n", "a\r\r\nb", "end\r\n"} {
		f.Add([]byte(s), len(s)/2)
	}
	f.Fuzz(func(t *testing.T, data []byte, split int) {
		if split < 0 || split > len(data) {
			split = len(data) / 2
		}
		var ours, theirs bytes.Buffer
		bw := bufio.NewWriter(&ours)
		d := &dotWriter{w: bw}
		d.Write(data[:split])
		d.Write(data[split:])
		d.Close()
		bw.Flush()
		tw := textproto.NewWriter(bufio.NewWriter(&theirs)).DotWriter()
		tw.Write(data)
		tw.Close()

		out := ours.Bytes()
		if !bytes.HasSuffix(out, []byte("\r\n.\r\n")) || bytes.Index(out, []byte("\r\n.\r\n")) != len(out)-5 {
			t.Fatalf("%q encodes as %q", data, out)
		}
		if bytes.Count(data, []byte("\r")) == bytes.Count(data, []byte("\r\n")) && !bytes.Equal(out, theirs.Bytes()) {
			t.Fatalf("%q encodes as %q, textproto as %q", data, out, theirs.Bytes())
		}
	})
}
