package smtpd

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"

	"facteur/internal/smtptest"
)

// refDot is the data of DATA read the slow, obvious way, a byte at a time
// as go-smtp does: a line's leading dot dropped, up to the line "." (a
// line begins after CRLF). rest is what follows the data, from its end
// line on; ended is false when the end line never comes.
func refDot(b []byte) (data, rest []byte, ended bool) {
	start := true
	data = []byte{}
	for i, c := range b {
		if start && c == '.' {
			if bytes.HasPrefix(b[i:], []byte(".\r\n")) {
				return data, b[i:], true
			}
			start = false
			continue
		}
		data = append(data, c)
		start = c == '\n' && len(data) > 1 && data[len(data)-2] == '\r'
	}
	return data, nil, false
}

func FuzzDotReader(f *testing.F) {
	for _, s := range []string{"Subject: a\r\n\r\nbody\r\n.\r\nQUIT\r\n", ".\r\n", "..\r\n.\r\n", "a\r\n..b\r\n.\r\n",
		"x\n.\r\n.\r\n", "x\r.\r\n.\r\n", ".\rx\r\n.\r\n", "no end\r\n", "a\r\n.", "a\r\n.\r", "\r\n\r\n.\r\n",
		strings.Repeat("0123456789\r\n", 10) + "..dot\r\n.\r\nMAIL FROM:<a@b>\r\n"} {
		f.Add([]byte(s), uint16(5), uint8(7), uint16(0))
	}
	f.Fuzz(func(t *testing.T, in []byte, chunk uint16, read uint8, limit uint16) {
		// Arrival in chunks, a small buffer and reads of a fuzzed size
		// put line starts, dots and the end line across every boundary.
		br := bufio.NewReaderSize(smtptest.Chunked(in, max(1, int(chunk))), 16)
		d := &dotReader{br: br, start: true, left: int64(limit), limited: limit > 0}
		var got []byte
		var err error
		p := make([]byte, max(1, int(read)))
		for err == nil {
			var n int
			n, err = d.Read(p)
			got = append(got, p[:n]...)
		}
		want, rest, ended := refDot(in)
		// As go-smtp's, the reader refuses data of the limit's exact
		// size: it stops at the limit before it looks for the end line.
		if limit > 0 && len(want) >= int(limit) {
			if !errors.Is(err, smtp.ErrDataTooLarge) || !bytes.Equal(got, want[:limit]) {
				t.Fatalf("%q, limit %d: read %q, %v", in, limit, got, err)
			}
			d.drain()
		} else if !bytes.Equal(got, want) {
			t.Fatalf("%q: read %q, want %q", in, got, want)
		} else if ended != (err == io.EOF) || !ended && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("%q: ended with %v", in, err)
		}
		// What go-smtp reads next is the end line and what follows.
		left, _ := io.ReadAll(br)
		if !bytes.Equal(left, rest) {
			t.Fatalf("%q: left %q for go-smtp, want %q", in, left, rest)
		}
	})
}

// The fast reader depends on go-smtp's unexported reader of DATA: a
// go-smtp that changed it fails here rather than silently going slow.
func TestDotReaderFindsGoSMTPBuffer(t *testing.T) {
	found := make(chan bool, 1)
	srv := smtp.NewServer(dataBackend(func(r io.Reader) { found <- smtpBuffer(r) != nil }))
	srv.Domain = "mx.example.test"
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	c := dial(t, l.Addr().String())
	c.must("EHLO c", 250)
	if code, text := c.send("s@example.org", []string{"alice@example.test"}, msg); code != 250 {
		t.Fatalf("%d %s", code, text)
	}
	if !<-found {
		t.Fatal("go-smtp's DATA reader has no *bufio.Reader field r: the fast path is off")
	}
	if smtpBuffer(strings.NewReader("x")) != nil || smtpBuffer(bufio.NewReader(nil)) != nil {
		t.Fatal("a buffer found in a reader that is not go-smtp's")
	}
}

// dataBackend is a go-smtp backend whose sessions hand the DATA reader to
// data and take every message.
type dataBackend func(io.Reader)

func (b dataBackend) NewSession(*smtp.Conn) (smtp.Session, error) { return dataSession(b), nil }

type dataSession func(io.Reader)

func (dataSession) Mail(string, *smtp.MailOptions) error { return nil }
func (dataSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (s dataSession) Data(r io.Reader) error {
	s(r)
	return nil
}
func (dataSession) Reset()        {}
func (dataSession) Logout() error { return nil }

// Dot-stuffed lines are stored unstuffed, across more than go-smtp's
// buffer, and the session goes on after the end line.
func TestDotStuffedMessageStored(t *testing.T) {
	e := newEnv(t)
	c := dial(t, e.smtp)
	c.must("EHLO c", 250)
	filler := strings.Repeat(strings.Repeat("y", 78)+"\r\n", 60)
	body := "..one\r\n...two\r\n. space\r\nx.\r\n..\r\n" + filler + "..after the buffer\r\n.x\r\n"
	if code, text := c.send("s@example.org", []string{"alice@example.test"}, "Subject: dots\r\n\r\n"+body); code != 250 {
		t.Fatalf("%d %s", code, text)
	}
	c.must("NOOP", 250)
	want := "Subject: dots\r\n\r\n.one\r\n..two\r\n space\r\nx.\r\n.\r\n" + filler + ".after the buffer\r\nx\r\n"
	if got := e.only(t, "alice"); !strings.HasSuffix(got, "\r\n"+want) {
		t.Errorf("stored %q, want it to end in %q", got, want)
	}
}
