package smtpd

import (
	"fmt"
	"io"
	"strings"
	"testing"
)

// A client that sends its message right after DATA, without waiting for
// the 354, and the next transaction in the same burst, is refused on the
// MX listeners (RFC 2920: DATA ends a pipelined group; Postfix's
// smtpd_forbid_unauth_pipelining): 554 5.5.0, closed, nothing stored.
func TestDataBeforeGoAheadRefused(t *testing.T) {
	burst := "MAIL FROM:<s@example.org>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n" + msg + ".\r\n" +
		"MAIL FROM:<ceo@example.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\nSubject: second\r\n\r\nx\r\n.\r\nQUIT\r\n"
	for way, open := range map[string]func(e *env) *client{
		"smtp": func(e *env) *client { return dial(t, e.smtp) },
		"smtp+STARTTLS": func(e *env) *client {
			c := dial(t, e.smtp)
			c.must("EHLO c", 250)
			c.starttls(e.clientT)
			return c
		},
		"smtps": func(e *env) *client { return dialTLS(t, e.smtps, e.clientT) },
	} {
		t.Run(way, func(t *testing.T) {
			e := newEnv(t)
			c := open(e)
			c.must("EHLO c", 250)
			c.write(burst)
			c.expect(250)
			c.expect(250)
			c.expect(354)
			c.expectReply("554 5.5.0")
			if !c.closed() {
				t.Error("connection still open")
			}
			e.nothingStored(t)
		})
	}
}

// Pipelining as RFC 2920 allows it goes on working: MAIL, RCPT and DATA in
// one write, the message after the 354, the next MAIL after the dot.
// A command read in two parts, split between its CR and LF, with replies
// written in between, has no bare line end.
func TestLawfulPipelining(t *testing.T) {
	e := newEnv(t)
	c := dial(t, e.smtp)
	c.must("EHLO c", 250)
	c.write("MAIL FROM:<s@example.org>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n")
	c.expect(250)
	c.expect(250)
	c.expect(354)
	// The replies to the message and to MAIL are written between the CR
	// and the LF that end RCPT.
	c.write(msg + ".\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<alice@example.test>\r")
	c.expect(250)
	c.expect(250)
	c.write("\nDATA\r\n")
	c.expect(250)
	c.expect(354)
	c.write(msg + ".\r\n")
	c.expect(250)
	c.must("QUIT", 221)
	if n := e.files(t, "alice", "new"); len(n) != 2 {
		t.Errorf("new/ holds %v, want 2 messages", n)
	}
}

// A message larger than go-smtp's 4 KiB buffer is read ahead (ahead.go):
// what the client sent after its end is still read as commands, in order,
// and message data among it, sent before its 354, is still refused.
func TestReadAheadKeepsTheStream(t *testing.T) {
	big := "Subject: big\r\n\r\n" + strings.Repeat(strings.Repeat("b", 76)+"\r\n", 300) // 23 KiB
	next := "MAIL FROM:<s@example.org>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n"
	e := newEnv(t)
	c := dial(t, e.smtp)
	c.must("EHLO c", 250)
	c.write(next)
	c.expect(250)
	c.expect(250)
	c.expect(354)
	c.write(big + ".\r\n" + next)
	for _, code := range []int{250, 250, 250, 354} {
		c.expect(code)
	}
	c.write(msg + ".\r\n")
	c.expect(250)
	if got := e.files(t, "alice", "new"); len(got) != 2 {
		t.Fatalf("new/ holds %v, want 2 messages", got)
	}

	c.write(next)
	c.expect(250)
	c.expect(250)
	c.expect(354)
	c.write(big + ".\r\n" + next + "Subject: smuggled\r\n\r\nx\r\n.\r\n")
	for _, code := range []int{250, 250, 250, 354} {
		c.expect(code)
	}
	c.expectReply("554 5.5.0")
	if !c.closed() {
		t.Error("connection still open")
	}
	if got := e.files(t, "alice", "new"); len(got) != 3 {
		t.Errorf("new/ holds %v, want the 3 messages sent after their 354", got)
	}
}

// Only unauthenticated MX sessions must wait for the 354: the relay, and a
// user logged in on smtps, may send the message at once.
func TestDataBeforeGoAheadAllowedWhenTrusted(t *testing.T) {
	e := newEnv(t)
	c := dial(t, e.relay)
	c.must("EHLO c", 250)
	c.write("MAIL FROM:<s@example.org>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n" + msg + ".\r\n")
	c.expect(250)
	c.expect(250)
	c.expect(354)
	c.expect(250)
	d := dialTLS(t, e.smtps, e.clientT)
	d.must("EHLO d", 250)
	d.must("AUTH PLAIN "+b64("\x00alice\x00wonderland"), 235)
	d.write("MAIL FROM:<alice@example.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n" +
		"From: alice@example.test\r\nSubject: hi\r\n\r\nHello.\r\n.\r\n")
	d.expect(250)
	d.expect(250)
	d.expect(354)
	d.expect(250)
	if n := e.files(t, "alice", "new"); len(n) != 2 {
		t.Errorf("new/ holds %v, want 2 messages", n)
	}
}

// A command ended by a bare LF, or holding a bare CR, is read by go-smtp as
// it comes; the next MAIL is refused and the connection closed. On every
// listener.
func TestBareLineEndingInCommandsRefused(t *testing.T) {
	for _, tc := range []struct{ listener, line string }{
		{"smtp", "NOOP\n"},
		{"smtp", "NOOP\rx\r\n"},
		{"relay", "RSET\n"},
		{"submission", "NOOP\n"},
	} {
		t.Run(fmt.Sprintf("%s/%q", tc.listener, tc.line), func(t *testing.T) {
			e := newEnv(t)
			addr := map[string]string{"smtp": e.smtp, "relay": e.relay, "submission": e.submit}[tc.listener]
			c := dial(t, addr)
			c.must("EHLO c", 250)
			c.write(tc.line)
			c.reply()
			c.write("MAIL FROM:<s@example.org>\r\n")
			c.expectReply("500 5.5.2")
			if !c.closed() {
				t.Error("connection still open")
			}
		})
	}
}

// RFC 3030 lets BDAT chunks split a message anywhere, between CR and LF
// too: that is no bare line end. A chunk ending in CR followed by anything
// else is one.
func TestBDATChunksMaySplitCRLF(t *testing.T) {
	e := newEnv(t)
	c := dial(t, e.smtp)
	c.must("EHLO c", 250)
	c.must("MAIL FROM:<s@example.org>", 250)
	c.must("RCPT TO:<alice@example.test>", 250)
	head, tail := "Subject: split\r", "\nbody\r\n"
	c.write(fmt.Sprintf("BDAT %d\r\n%s", len(head), head))
	c.expect(250)
	c.write(fmt.Sprintf("bdat %d last\r\n%s", len(tail), tail))
	c.expect(250)
	if got := e.only(t, "alice"); !strings.HasSuffix(got, "Subject: split\r\nbody\r\n") {
		t.Errorf("stored %q", got)
	}

	c.must("MAIL FROM:<s@example.org>", 250)
	c.must("RCPT TO:<alice@example.test>", 250)
	c.write(fmt.Sprintf("BDAT %d\r\n%s", len(head), head))
	c.expect(250)
	c.write(fmt.Sprintf("BDAT %d LAST\r\n%s", len("body\r\n"), "body\r\n"))
	c.expectReply("550 5.6.0")
	if !c.closed() {
		t.Error("connection still open")
	}
	if n := e.files(t, "alice", "new"); len(n) != 1 {
		t.Errorf("new/ holds %v, want the first message only", n)
	}
}

func TestLineEnds(t *testing.T) {
	for _, tc := range []struct {
		chunks []string
		bad    bool
	}{
		{[]string{"EHLO a\r\n", "MAIL FROM:<>\r\n"}, false},
		{[]string{"EHLO a\r", "\nMAIL"}, false},
		{[]string{"EHLO a\n"}, true},
		{[]string{"EHLO a\r", "MAIL\r\n"}, true},
		{[]string{"x\r\n.\r", "x"}, true},
		{[]string{"x\r\n.\rx"}, true},
		{[]string{"x\r\n", "\n"}, true},
		{[]string{"x\r", "BDAT 5 LAST\r\n", "\nabcd"}, false},
		{[]string{"x\rBD", "at 5\r", "\n\nabcd\r\n"}, false},
		{[]string{"x\rBDAT 5\r\nabc"}, true},
		{[]string{"x\rBDAT 5\n\nabc"}, true},
		{[]string{"x\rBDAX 5\r\n\n"}, true},
		{[]string{"x\rBDAT\x005\r\n\n"}, true},
	} {
		var l lineEnds
		bad := false
		for _, c := range tc.chunks {
			b, _ := l.take([]byte(c), 0)
			bad = bad || b
		}
		if bad != tc.bad {
			t.Errorf("%q: bad %v, want %v", tc.chunks, bad, tc.bad)
		}
	}
}

// A line of limit octets, its CRLF included, passes; one more does not,
// however the stream is cut.
func TestLineLimit(t *testing.T) {
	for _, tc := range []struct {
		chunks []string
		long   bool
	}{
		{[]string{"12345678\r\n", "12345678\r\n"}, false},
		{[]string{"123456789\r\n"}, true},
		{[]string{"ab\r\n123456789\r\nab\r\n"}, true},
		{[]string{"1234", "5678\r", "\n"}, false},
		{[]string{"12345", "6789\r", "\n"}, true},
		{[]string{"123456789\r", "\n"}, true},
		{[]string{"1234567890"}, false},
		{[]string{"12345678901"}, true},
		{[]string{"12345\r\n123", "45678\r\n"}, false},
		{[]string{"x\r", "BDAT 5\r\n", "\nabcd"}, true}, // one line to the wire
	} {
		var l lineEnds
		long := false
		for _, c := range tc.chunks {
			bad, lg := l.take([]byte(c), 10)
			if bad {
				t.Fatalf("%q: bad line end", tc.chunks)
			}
			long = long || lg
		}
		if long != tc.long {
			t.Errorf("%q: long %v, want %v", tc.chunks, long, tc.long)
		}
	}
}

// BenchmarkWireTap is the guard's cost on 4 KiB of message data read
// through io.TeeReader, as go-smtp reads: in whole lines, and ending in
// the middle of a line, which makes it ask who the caller is.
func BenchmarkWireTap(b *testing.B) {
	for name, data := range map[string]string{"lines": benchBody, "mid-line": benchBody + "abc"} {
		b.Run(name, func(b *testing.B) {
			c := &conn{}
			src := strings.NewReader(data)
			r := io.TeeReader(src, &wireTap{c: c})
			buf := make([]byte, len(data))
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				src.Reset(data)
				c.wire.ends = lineEnds{}
				r.Read(buf)
			}
			if c.wire.bare.Load() {
				b.Fatal("bare line end found")
			}
		})
	}
}
