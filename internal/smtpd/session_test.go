package smtpd

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestPlainDelivery(t *testing.T) {
	e := newEnv(t)
	c := dial(t, e.smtp)
	ehlo := c.must("EHLO client.example.org", 250)
	for _, ext := range []string{"PIPELINING", "8BITMIME", "SMTPUTF8", "SIZE 1048576", "ENHANCEDSTATUSCODES", "STARTTLS"} {
		if !strings.Contains(ehlo, ext) {
			t.Errorf("EHLO lacks %s:\n%s", ext, ehlo)
		}
	}
	code, text := c.send("sender@example.org", []string{"alice@example.test"}, msg)
	if code != 250 || !regexp.MustCompile(`^2\.0\.0 Ok: queued as [0-9A-Z]{16}$`).MatchString(text) {
		t.Fatalf("DATA: %d %s", code, text)
	}
	id := strings.TrimPrefix(text, "2.0.0 Ok: queued as ")
	c.must("QUIT", 221)

	got := e.only(t, "alice")
	head, body, ok := strings.Cut(got, "Received: ")
	if !ok || head != "Return-Path: <sender@example.org>\r\nDelivered-To: alice@example.test\r\n" {
		t.Fatalf("stored message does not start with Return-Path, Delivered-To then Received:\n%s", got)
	}
	received, rest, _ := strings.Cut(body, "\r\n\t"+time.Now().Format("Mon, 02 Jan 2006"))
	if !strings.HasPrefix(received, "from client.example.org ([127.0.0.1])\r\n\tby mx.example.test (facteur) with ESMTP id "+id+"\r\n\tfor <alice@example.test>;") {
		t.Errorf("Received header: %q", received)
	}
	if _, after, _ := strings.Cut(rest, "\r\n"); after != msg {
		t.Errorf("stored body differs from the sent one:\n%q\nwant\n%q", after, msg)
	}
}

func TestSTARTTLSDelivery(t *testing.T) {
	e := newEnv(t)
	c := dial(t, e.smtp)
	c.must("EHLO client.example.org", 250)
	c.starttls(e.clientT)
	ehlo := c.must("EHLO client.example.org", 250)
	if strings.Contains(ehlo, "STARTTLS") {
		t.Errorf("STARTTLS still offered inside TLS:\n%s", ehlo)
	}
	if code, text := c.send("s@example.org", []string{"alice@example.test"}, msg); code != 250 {
		t.Fatalf("DATA: %d %s", code, text)
	}
	// The goodbye must arrive before TLS's close_notify ends the session.
	c.must("QUIT", 221)
	got := e.only(t, "alice")
	if !regexp.MustCompile(`with ESMTPS id [0-9A-Z]+\r\n\t\(TLS 1\.3 TLS_[A-Z0-9_]+\)\r\n`).MatchString(got) {
		t.Errorf("Received header does not record TLS:\n%s", got)
	}
	if !strings.HasSuffix(got, "\r\n"+msg) {
		t.Errorf("body not stored as sent:\n%s", got)
	}
}

func TestImplicitTLSDelivery(t *testing.T) {
	e := newEnv(t)
	c := dialTLS(t, e.smtps, e.clientT)
	ehlo := c.must("EHLO client.example.org", 250)
	if strings.Contains(ehlo, "STARTTLS") {
		t.Errorf("STARTTLS offered on the implicit-TLS port:\n%s", ehlo)
	}
	if code, text := c.send("s@example.org", []string{"alice@example.test"}, msg); code != 250 {
		t.Fatalf("DATA: %d %s", code, text)
	}
	c.must("QUIT", 221)
	if got := e.only(t, "alice"); !strings.Contains(got, "with ESMTPS id") {
		t.Errorf("not recorded as TLS:\n%s", got)
	}
}

func TestSeveralRecipientsEachGetACopy(t *testing.T) {
	e := newEnv(t)
	c := dial(t, e.smtp)
	c.must("EHLO c", 250)
	code, _ := c.send("s@example.org", []string{"alice@example.test", "bob@example.test", "ALICE@Example.TEST", "x@other.test"}, msg)
	if code != 250 {
		t.Fatalf("DATA: %d", code)
	}
	a, r, x := e.only(t, "alice"), e.only(t, "robert"), e.only(t, "catchall")
	// Each copy says which address it was delivered for, and only that.
	for to, m := range map[string]*string{"alice@example.test": &a, "bob@example.test": &r, "x@other.test": &x} {
		field := "Delivered-To: " + to + "\r\n"
		if strings.Count(*m, "Delivered-To:") != 1 || !strings.Contains(*m, field) {
			t.Errorf("copy for %s:\n%s", to, *m)
		}
		*m = strings.Replace(*m, field, "", 1)
	}
	if a != r || a != x {
		t.Errorf("copies differ")
	}
	if strings.Contains(a, "\tfor <") {
		t.Errorf("Received names one recipient of several:\n%s", a)
	}
}

func TestConcurrentClients(t *testing.T) {
	e := newEnv(t)
	const clients, each = 50, 20
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			c := dial(t, e.smtp)
			c.must("EHLO c", 250)
			for j := range each {
				data := fmt.Sprintf("Subject: %d-%d\r\n\r\nbody\r\n", i, j)
				if code, text := c.send("s@example.org", []string{"alice@example.test"}, data); code != 250 {
					t.Errorf("client %d message %d: %d %s", i, j, code, text)
					return
				}
			}
			c.must("QUIT", 221)
		})
	}
	wg.Wait()
	names := e.files(t, "alice", "new")
	seen := map[string]bool{}
	for _, n := range names {
		seen[n] = true
	}
	if len(names) != clients*each || len(seen) != clients*each {
		t.Fatalf("%d files (%d distinct), want %d", len(names), len(seen), clients*each)
	}
	subjects := map[string]bool{}
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(e.root, "alice", "Maildir", "new", n))
		if err != nil {
			t.Fatal(err)
		}
		s := regexp.MustCompile(`Subject: (\d+-\d+)`).FindSubmatch(b)
		if s == nil {
			t.Fatalf("%s has no subject", n)
		}
		subjects[string(s[1])] = true
	}
	if len(subjects) != clients*each {
		t.Errorf("%d distinct messages stored, want %d", len(subjects), clients*each)
	}
}

func TestRecipientPolicy(t *testing.T) {
	e := newEnv(t)
	c := dial(t, e.smtp)
	c.must("EHLO c", 250)
	c.must("MAIL FROM:<s@example.org>", 250)
	for _, tc := range []struct {
		rcpt string
		want string
	}{
		{"<nobody@example.test>", "550 5.1.1"},
		{"<alice@elsewhere.org>", "550 5.7.1"},
		{"<alice@example.test@evil.org>", "550 5.7.1"},
		{"<alice%evil.org@example.test>", "550 5.1.1"},
		{`<"alice@evil.org"@example.test>`, "550 5.1.1"},
		{"<@example.test:alice@evil.org>", "550 5.7.1"},
		{"<../alice@example.test>", "550 5.1.1"},
		{"<alice/../../x@example.test>", "550 5.1.1"},
		{"<a/b@example.test>", "550 5.1.1"},
		{"<alice@[127.0.0.1]>", "550 5.7.1"},
		{"<" + strings.Repeat("a", 65) + "@example.test>", "501 5.1.3"},
		{"<a@" + strings.Repeat("d.", 130) + "test>", "501 5.1.3"},
		{"<alice>", "501"},
		// RFC 5321 4.1.1.3 allows a bare <postmaster>, but go-smtp's
		// parser wants a domain (see docs/guarantees.md, Limits).
		{"<Postmaster>", "501"},
	} {
		code, text := c.cmd("RCPT TO:" + tc.rcpt)
		if got := fmt.Sprintf("%d %s", code, text); !strings.HasPrefix(got, tc.want) {
			t.Errorf("RCPT TO:%s: got %q, want %s", tc.rcpt, got, tc.want)
		}
	}
	c.must("RSET", 250)
	// A source route is ignored (RFC 5321 C): the mailbox is what counts.
	if code, _ := c.send("s@example.org", []string{"@relay.org:alice@example.test"}, msg); code != 250 {
		t.Fatalf("DATA: %d", code)
	}
	e.only(t, "alice")
	ents, _ := os.ReadDir(e.root)
	if len(ents) != 1 {
		t.Errorf("maildir root holds %d entries, want only alice's", len(ents))
	}
}

func TestTooManyRecipients(t *testing.T) {
	e := newEnv(t) // MaxRecipients 5
	c := dial(t, e.smtp)
	c.must("EHLO c", 250)
	c.must("MAIL FROM:<s@example.org>", 250)
	for range 5 {
		c.must("RCPT TO:<alice@example.test>", 250)
	}
	if text := c.must("RCPT TO:<alice@example.test>", 452); !strings.HasPrefix(text, "4.5.3") {
		t.Errorf("got %q", text)
	}
}

func TestOversizeMessage(t *testing.T) {
	e := newEnv(t) // MaxMessageBytes 1 MiB
	c := dial(t, e.smtp)
	c.must("EHLO c", 250)
	if text := c.must("MAIL FROM:<s@example.org> SIZE=2000000", 552); !strings.HasPrefix(text, "5.3.4") {
		t.Errorf("MAIL SIZE=: %q", text)
	}
	line := strings.Repeat("x", 998) + "\r\n"
	code, text := c.send("s@example.org", []string{"alice@example.test"}, "Subject: big\r\n\r\n"+strings.Repeat(line, 1100))
	if code != 552 || !strings.HasPrefix(text, "5.3.4") {
		t.Fatalf("got %d %s, want 552 5.3.4", code, text)
	}
	if n := e.files(t, "alice", "new"); len(n) != 0 {
		t.Errorf("stored: %v", n)
	}
	if n := e.files(t, "alice", "tmp"); len(n) != 0 {
		t.Errorf("left in tmp/: %v", n)
	}
	// The session goes on.
	if code, _ := c.send("s@example.org", []string{"alice@example.test"}, msg); code != 250 {
		t.Fatalf("after the refusal: %d", code)
	}
}

func TestBareLineEndingsRefused(t *testing.T) {
	for name, data := range map[string]string{
		"bare LF":             "Subject: a\r\n\r\nline\nmore\r\n",
		"smuggled \\n.\\n":    "Subject: a\r\n\r\nx\r\n\n.\nMAIL FROM:<evil@example.org>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\nSubject: smuggled\r\n\r\n",
		"smuggled \\r.\\r":    "Subject: a\r\n\r\nx\r.\rMAIL FROM:<evil@example.org>\r\n",
		"bare CR":             "Subject: a\r\n\r\nline\rmore\r\n",
		"CR before CRLF":      "Subject: a\r\n\r\nline\r\r\nmore\r\n",
		"smuggled \\r\\n.\\n": "Subject: a\r\n\r\nx\r\n.\nMAIL FROM:<evil@example.org>\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			c := dial(t, e.smtp)
			c.must("EHLO c", 250)
			code, text := c.send("s@example.org", []string{"alice@example.test"}, data)
			if code != 550 || !strings.HasPrefix(text, "5.6.0") {
				t.Fatalf("got %d %s, want 550 5.6.0", code, text)
			}
			if !c.closed() {
				t.Error("connection still open after the refusal")
			}
			if n := e.files(t, "alice", "new"); len(n) != 0 {
				t.Errorf("stored: %v", n)
			}
			if n := e.files(t, "alice", "tmp"); len(n) != 0 {
				t.Errorf("left in tmp/: %v", n)
			}
		})
	}
}

func TestPipelinedCommandsBeforeSTARTTLSAreDropped(t *testing.T) {
	e := newEnv(t)
	c := dial(t, e.smtp)
	c.must("EHLO c", 250)
	// An attacker in the middle appends plaintext commands after STARTTLS
	// (CVE-2011-0411): they must not run inside the TLS session.
	c.write("STARTTLS\r\nEHLO c\r\nMAIL FROM:<injected@evil.org>\r\n")
	c.expect(220)
	if c.r.Buffered() != 0 {
		t.Fatalf("server answered the pipelined commands before the handshake")
	}
	tc := tls.Client(c.conn, e.clientT)
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	c.conn, c.r = tc, bufio.NewReader(tc)
	code, text := c.cmd("RCPT TO:<alice@example.test>")
	if code == 250 {
		t.Fatalf("a command sent before TLS took effect inside TLS: %d %s", code, text)
	}
}

func TestOverlongCommandLine(t *testing.T) {
	e := newEnv(t) // MaxLineBytes 1000
	c := dial(t, e.smtp)
	c.must("EHLO c", 250)
	code, text := c.cmd("MAIL FROM:<" + strings.Repeat("a", 2000) + "@example.org>")
	if code != 500 || !strings.HasPrefix(text, "5.") {
		t.Fatalf("got %d %s, want 500", code, text)
	}
	if !c.closed() {
		t.Error("connection still open after an over-long line")
	}
}

func TestStalledClientTimesOut(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Timeout = 300 * time.Millisecond })
	c := dial(t, e.smtp)
	c.must("EHLO c", 250)
	// Say nothing: the server must give up.
	if text := c.expect(421); !strings.HasPrefix(text, "4.4.2") {
		t.Errorf("got %q", text)
	}
	if !c.closed() {
		t.Error("connection still open")
	}
}

func TestConnectionLimits(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.MaxConns = 3; o.MaxConnsPerIP = 2 })
	dial(t, e.smtp)
	dial(t, e.smtp)
	c := dialFrom(t, "127.0.0.1", e.smtp)
	if text := c.expect(421); !strings.HasPrefix(text, "4.7.0") || !strings.Contains(text, "from your address") {
		t.Errorf("per-IP limit: %q", text)
	}
	// Another loopback address is another client: under the per-IP cap, up
	// to the total.
	d := dialFrom(t, "127.0.0.2", e.smtp)
	d.expect(220)
	c = dialFrom(t, "127.0.0.3", e.smtp)
	if text := c.expect(421); !strings.HasPrefix(text, "4.7.0") || !strings.Contains(text, "too many connections") {
		t.Errorf("total limit: %q", text)
	}
}

// The session receiving a message finishes it; at debug level too, where
// it has a server of its own.
func TestShutdownLetsDataFinish(t *testing.T) {
	for _, level := range []slog.Level{slog.LevelInfo, slog.LevelDebug} {
		t.Run(level.String(), func(t *testing.T) {
			e := newEnv(t, func(o *Options) {
				o.Log = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: level}))
			})
			idle := dial(t, e.smtp)
			idle.must("EHLO c", 250)
			busy := dial(t, e.smtp)
			busy.must("EHLO c", 250)
			busy.must("MAIL FROM:<s@example.org>", 250)
			busy.must("RCPT TO:<alice@example.test>", 250)
			busy.must("DATA", 354)
			busy.write("Subject: half\r\n\r\n")
			waitFor(t, func() bool { return e.srv.cs.busyCount() == 1 })

			done := make(chan error)
			go func() { done <- e.srv.Shutdown(t.Context()) }()
			if code, _ := idle.reply(); code != 421 {
				t.Errorf("idle session got %d, want 421", code)
			}
			busy.write("rest of the message\r\n.\r\n")
			busy.expect(250)
			// Then it is idle, and told so.
			if text := busy.expect(421); text != "4.3.2 mx.example.test shutting down" {
				t.Errorf("after its message: %q", text)
			}
			if err := <-done; err != nil {
				t.Errorf("shutdown: %v", err)
			}
			e.only(t, "alice")
		})
	}
}

// Every idle client hears why it is dropped, in plaintext or through TLS,
// rather than go-smtp's "Idle timeout"; at debug level too, where each
// session has a server of its own.
func TestShutdownSaysGoodbye(t *testing.T) {
	for _, level := range []slog.Level{slog.LevelInfo, slog.LevelDebug} {
		t.Run(level.String(), func(t *testing.T) {
			e := newEnv(t, func(o *Options) {
				o.Log = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: level}))
			})
			fresh := dial(t, e.smtp) // no EHLO yet
			plain := dial(t, e.smtp)
			plain.must("EHLO c", 250)
			upgraded := dial(t, e.smtp)
			upgraded.must("EHLO c", 250)
			upgraded.starttls(e.clientT)
			afterTLS := dial(t, e.smtp) // STARTTLS, no EHLO again yet
			afterTLS.must("EHLO c", 250)
			afterTLS.starttls(e.clientT)
			// Answered: the server's side of the handshake is over too.
			// (In the middle of it, the client gets go-smtp's plaintext
			// "550 Handshake error".)
			afterTLS.must("NOOP", 250)
			upgraded.must("EHLO c", 250)
			implicit := dialTLS(t, e.smtps, e.clientT)
			implicit.must("EHLO c", 250)
			if err := e.srv.Shutdown(t.Context()); err != nil {
				t.Fatal(err)
			}
			for name, c := range map[string]*client{"before EHLO": fresh, "plaintext": plain, "STARTTLS": upgraded,
				"STARTTLS before EHLO": afterTLS, "implicit TLS": implicit} {
				if text := c.expect(421); text != "4.3.2 mx.example.test shutting down" {
					t.Errorf("%s: %q", name, text)
				}
				if !c.closed() {
					t.Errorf("%s: still open", name)
				}
			}
		})
	}
}
