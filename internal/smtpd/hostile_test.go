package smtpd

import (
	"fmt"
	"io"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// Hostile input: each case names the exact reply a client gets, and that
// nothing reaches a Maildir (new/ or tmp/).

// nothingStored fails the test if any mailbox of e holds a file.
func (e *env) nothingStored(t *testing.T) {
	t.Helper()
	for _, mb := range []string{"alice", "robert", "catchall"} {
		for _, sub := range []string{"new", "tmp"} {
			if n := e.files(t, mb, sub); len(n) != 0 {
				t.Errorf("%s/%s holds %v", mb, sub, n)
			}
		}
	}
}

// expectReply reads a reply and fails unless it starts with want ("550 5.6.0").
func (c *client) expectReply(want string) {
	c.t.Helper()
	code, text := c.reply()
	if got := fmt.Sprintf("%d %s", code, text); !strings.HasPrefix(got, want) {
		c.t.Errorf("got %q, want %s", got, want)
	}
}

// The end-of-data variants of SMTP smuggling (SEC Consult, December 2023,
// and the Postfix and smtpsmug lists that followed): each hides a second
// message behind something a lenient server takes for <CRLF>.<CRLF>. The
// message holding it is refused whole, the smuggled commands are never
// run, and the connection is closed after the refusal of a bare CR or LF. Over plain SMTP,
// STARTTLS and implicit TLS: the guard reads the bytes above TLS.
func TestSmugglingVariantsRefused(t *testing.T) {
	smuggled := "MAIL FROM:<ceo@example.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\nSubject: smuggled\r\n\r\nevil\r\n"
	ways := map[string]func(e *env) *client{
		"smtp": func(e *env) *client { return dial(t, e.smtp) },
		"smtp+STARTTLS": func(e *env) *client {
			c := dial(t, e.smtp)
			c.must("EHLO c", 250)
			c.starttls(e.clientT)
			return c
		},
		"smtps": func(e *env) *client { return dialTLS(t, e.smtps, e.clientT) },
	}
	for way, open := range ways {
		for _, eod := range []string{
			"\n.\n", "\n.\r\n", "\r.\r", "\r.\n", "\r.\r\n", "\r\n.\n", "\n.\r",
			// go-smtp's dot reader drops the CR of "<CRLF>.<CR>" followed by
			// anything but LF: the connection guard refuses these.
			"\r\n.\r", "\r\n.\r\r\n", "\r\n.\rx",
			"\r\n\x00.\r\n", "\r\n.\x00\r\n", "\n..\n", "\r..\r",
		} {
			t.Run(fmt.Sprintf("%s/%q", way, eod), func(t *testing.T) {
				e := newEnv(t)
				c := open(e)
				c.must("EHLO c", 250)
				c.must("MAIL FROM:<s@example.org>", 250)
				c.must("RCPT TO:<alice@example.test>", 250)
				c.must("DATA", 354)
				c.write("Subject: a\r\n\r\nx" + eod + smuggled + "\r\n.\r\n")
				c.expectReply("550 5.6.0")
				if strings.Contains(eod, "\x00") {
					// A NUL leaves the line ends as they should be: the
					// session goes on, and the next reply is the NOOP's.
					c.must("NOOP", 250)
				} else if !c.closed() {
					t.Error("connection still open after the refusal")
				}
				e.nothingStored(t)
			})
		}
	}
}

func TestNULRefused(t *testing.T) {
	e := newEnv(t)
	c := dial(t, e.smtp)
	c.must("EHLO c", 250)
	c.write("MAIL FROM:<s\x00@example.org>\r\n")
	c.expectReply("501 5.1.3")
	c.must("MAIL FROM:<s@example.org>", 250)
	c.write("RCPT TO:<alice\x00@example.test>\r\n")
	c.expectReply("501 5.1.3")
	c.write("RCPT TO:<alice@example.test>\x00\r\n")
	c.expectReply("500 5.5.4")
	c.must("RCPT TO:<alice@example.test>", 250)
	c.must("DATA", 354)
	c.write("Subject: nul\r\n\r\nbinary\x00zero\r\n.\r\n")
	c.expectReply("550 5.6.0")
	c.write("NO\x00OP\r\n")
	c.expectReply("501 5.5.2")
	c.must("NOOP", 250)
	e.nothingStored(t)
}

// RFC 6531 3.4: a non-ASCII address needs SMTPUTF8 on MAIL.
func TestEightBitAddressNeedsSMTPUTF8(t *testing.T) {
	e := newEnv(t)
	c := dial(t, e.smtp)
	c.must("EHLO c", 250)
	c.write("MAIL FROM:<élodie@example.org>\r\n")
	c.expectReply("553 5.6.7")
	c.must("MAIL FROM:<s@example.org>", 250)
	c.write("RCPT TO:<alïce@example.test>\r\n")
	c.expectReply("553 5.6.7")
	c.must("RSET", 250)
	// With SMTPUTF8 the same addresses are judged on who they are.
	c.must("MAIL FROM:<élodie@example.org> SMTPUTF8", 250)
	c.write("RCPT TO:<alïce@example.test>\r\n")
	c.expectReply("550 5.1.1")
	e.nothingStored(t)
}

// Quotes, comments, source routes, IP literals and over-long parts: the
// open-relay matrix, run over every inbound way in. Only the domain after
// the last '@' decides, and only local domains are accepted.
func TestOpenRelayMatrixOnEveryListener(t *testing.T) {
	matrix := []struct{ rcpt, want string }{
		{"<victim@elsewhere.org>", "550 5.7.1"},
		{"<alice@example.test@evil.org>", "550 5.7.1"},
		{"<alice%evil.org@example.test>", "550 5.1.1"},
		{"<evil.org!alice@example.test>", "550 5.1.1"},
		{`<"alice@evil.org"@example.test>`, "550 5.1.1"},
		{`<"alice"@example.test>`, "250"}, // the same mailbox, quoted
		{`<"al\"ice"@example.test>`, "550 5.1.1"},
		{"<@example.test:victim@evil.org>", "550 5.7.1"},
		{"<@a.example,@example.test:victim@evil.org>", "550 5.7.1"},
		{"<alice@[127.0.0.1]>", "550 5.7.1"},
		{"<alice@[IPv6:::1]>", "550 5.7.1"},
		{"<victim@evil.org(example.test)>", "550 5.7.1"},
		{"<alice(comment)@example.test>", "501 5.5.2"},
		{"victim@elsewhere.org", "550 5.7.1"}, // go-smtp tolerates missing brackets
		{"<alice@example.test> (comment)", "500 5.5.4"},
		{"<" + strings.Repeat("a", 65) + "@example.test>", "501 5.1.3"},
		{"<a@" + strings.Repeat("d.", 128) + "test>", "501 5.1.3"},
		{"<victim@evil.org.>", "550 5.7.1"},
		{"<victim@example.test.evil.org>", "550 5.7.1"},
		{"<>", "501"},
	}
	run := func(t *testing.T, e *env, c *client) {
		c.must("EHLO c", 250)
		c.must("MAIL FROM:<s@example.org>", 250)
		for _, tc := range matrix {
			code, text := c.cmd("RCPT TO:" + tc.rcpt)
			if got := fmt.Sprintf("%d %s", code, text); !strings.HasPrefix(got, tc.want) {
				t.Errorf("RCPT TO:%s: got %q, want %s", tc.rcpt, got, tc.want)
			}
		}
		c.must("RSET", 250)
		e.nothingStored(t)
	}
	t.Run("smtp", func(t *testing.T) {
		e := newEnv(t)
		run(t, e, dial(t, e.smtp))
	})
	t.Run("smtp+STARTTLS", func(t *testing.T) {
		e := newEnv(t)
		c := dial(t, e.smtp)
		c.must("EHLO c", 250)
		c.starttls(e.clientT)
		run(t, e, c)
	})
	t.Run("smtps", func(t *testing.T) {
		e := newEnv(t)
		run(t, e, dialTLS(t, e.smtps, e.clientT))
	})
	t.Run("relay from outside relay_networks", func(t *testing.T) {
		e := newEnv(t, func(o *Options) { o.RelayAllowed = func(netip.Addr) bool { return false } })
		c := dial(t, e.relay)
		c.must("EHLO c", 250)
		c.write("MAIL FROM:<s@example.org>\r\n")
		c.expectReply("530 5.7.0")
		for _, tc := range matrix {
			if code, text := c.cmd("RCPT TO:" + tc.rcpt); code == 250 {
				t.Errorf("RCPT TO:%s accepted without MAIL: %d %s", tc.rcpt, code, text)
			}
		}
		c.write("DATA\r\n")
		c.expectReply("502 5.5.1")
		if n := len(e.queue.all()); n != 0 {
			t.Errorf("%d messages queued", n)
		}
		e.nothingStored(t)
	})
}

// Header lines are limited to 998 octets (RFC 5322 2.1.1); body lines to
// max_line_bytes, beyond which the connection is closed, in plain text
// and in TLS (the guard counts above TLS).
func TestOverlongLinesInData(t *testing.T) {
	for _, tlsOn := range []bool{false, true} {
		t.Run(fmt.Sprint("tls=", tlsOn), func(t *testing.T) {
			e := newEnv(t, func(o *Options) { o.MaxLineBytes = 2000 })
			c := dial(t, e.smtp)
			c.must("EHLO c", 250)
			if tlsOn {
				c.starttls(e.clientT)
				c.must("EHLO c", 250)
			}
			long := "Subject: " + strings.Repeat("x", 990) // 999 octets
			code, text := c.send("s@example.org", []string{"alice@example.test"}, long+"\r\n\r\nbody\r\n")
			if got := fmt.Sprintf("%d %s", code, text); !strings.HasPrefix(got, "550 5.6.0") {
				t.Errorf("999-octet header line: got %q, want 550 5.6.0", got)
			}
			// 998 octets is allowed, in the header and in the body.
			ok := "Subject: " + strings.Repeat("x", 989)
			if code, text := c.send("s@example.org", []string{"alice@example.test"}, ok+"\r\n\r\n"+ok+"\r\n"); code != 250 {
				t.Fatalf("998-octet lines: %d %s", code, text)
			}
			if n := e.files(t, "alice", "new"); len(n) != 1 {
				t.Fatalf("new/ holds %v, want the one good message", n)
			}
			// A body line over max_line_bytes ends the connection.
			code, text = c.send("s@example.org", []string{"alice@example.test"}, "Subject: a\r\n\r\n"+strings.Repeat("y", 3000)+"\r\n")
			if got := fmt.Sprintf("%d %s", code, text); !strings.HasPrefix(got, "500 5.4.0") {
				t.Errorf("over-long body line: got %q, want 500 5.4.0", got)
			}
			if !c.closed() {
				t.Error("connection still open after an over-long body line")
			}
			if n := e.files(t, "alice", "new"); len(n) != 1 {
				t.Errorf("new/ holds %v, want only the good message", n)
			}
			if n := e.files(t, "alice", "tmp"); len(n) != 0 {
				t.Errorf("tmp/ holds %v", n)
			}
		})
	}
}

// A DATA whose end never comes is cut off by the timeout; nothing is kept.
func TestDataThatNeverEnds(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Timeout = 300 * time.Millisecond })
	c := dial(t, e.smtp)
	c.must("EHLO c", 250)
	c.must("MAIL FROM:<s@example.org>", 250)
	c.must("RCPT TO:<alice@example.test>", 250)
	c.must("DATA", 354)
	c.write("Subject: endless\r\n\r\n")
	for i := 0; i < 5; i++ { // keeps sending, but never the final dot
		c.write("more\r\n")
	}
	c.expectReply("451 4.4.2")
	if !c.closed() {
		t.Error("connection still open")
	}
	e.nothingStored(t)
}

// No AUTH is offered on the inbound listener: whatever a client sends, it
// is never authenticated and relaying stays closed.
func TestAuthGarbage(t *testing.T) {
	e := newEnv(t)
	c := dial(t, e.smtp)
	if ehlo := c.must("EHLO c", 250); strings.Contains(ehlo, "AUTH") {
		t.Fatalf("AUTH offered on the inbound listener:\n%s", ehlo)
	}
	for _, line := range []string{"AUTH", "AUTH PLAIN", "AUTH PLAIN !!!notbase64", "AUTH PLAIN AGFsaWNlAHNlY3JldA==",
		"AUTH LOGIN", "AUTH XYZZY " + strings.Repeat("A", 900), "AUTH \x00\x01"} {
		code, text := c.cmd(line)
		if code/100 == 2 || code/100 == 3 {
			t.Errorf("%q: got %d %s", line, code, text)
		}
		if code == 421 {
			c = dial(t, e.smtp) // the server hung up on repeated errors; start over
			c.must("EHLO c", 250)
		}
	}
	c = dial(t, e.smtp)
	c.must("EHLO c", 250)
	c.cmd("AUTH PLAIN AGFsaWNlAHNlY3JldA==")
	c.must("MAIL FROM:<s@example.org>", 250)
	c.write("RCPT TO:<victim@elsewhere.org>\r\n")
	c.expectReply("550 5.7.1")
	e.nothingStored(t)
}

// Thousands of RCPTs in one write: every one gets exactly one reply, at
// most max_recipients are taken, and the server stays up.
func TestPipelinedRecipientFlood(t *testing.T) {
	e := newEnv(t) // MaxRecipients 5
	c := dial(t, e.smtp)
	c.must("EHLO c", 250)
	c.must("MAIL FROM:<s@example.org>", 250)
	const n = 5000
	go func() {
		io.WriteString(c.conn, strings.Repeat("RCPT TO:<alice@example.test>\r\n", n))
	}()
	counts := map[string]int{}
	for range n {
		code, text := c.reply()
		counts[fmt.Sprintf("%d %s", code, text[:5])]++
	}
	if counts["250 2.0.0"] != 5 || counts["452 4.5.3"] != n-5 || len(counts) != 2 {
		t.Errorf("replies: %v, want 5 × 250 and %d × 452 4.5.3", counts, n-5)
	}
	c.must("RSET", 250)
	c.must("NOOP", 250)
	e.nothingStored(t)
	// And another client is served meanwhile.
	d := dial(t, e.smtp)
	d.must("EHLO d", 250)
}
