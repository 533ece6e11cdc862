package smtpd

import (
	"slices"
	"strings"
	"testing"
	"time"

	"facteur/internal/aliases"
	"facteur/internal/queue"
	"facteur/internal/srs"
)

// aliasEnv is a server with aliases, tags on "+", and SRS.
func aliasEnv(t *testing.T) (*env, *srs.Rewriter) {
	t.Helper()
	r := srs.NewWithKey("mx.example.test", []byte("a key for the tests, long enough"))
	e := newEnv(t, func(o *Options) { o.RecipientDelimiter, o.SRS, o.ScratchDir = "+", r, t.TempDir() })
	a, err := aliases.Parse(strings.NewReader("sales: alice, bob, partner@example.net\nteam: sales, alice\nghosts: nobody\n"),
		"aliases", []string{"example.test", "other.test"})
	if err != nil {
		t.Fatal(err)
	}
	e.srv.SetAliases(a)
	return e, r
}

func TestAliasToLocalsAndElsewhere(t *testing.T) {
	e, r := aliasEnv(t)
	c := dial(t, e.smtp)
	c.must("EHLO client.example.org", 250)
	// team is sales plus alice again: one copy each.
	if code, text := c.send("sender@example.org", []string{"team@example.test", "sales@example.test"}, msg); code != 250 {
		t.Fatalf("DATA: %d %s", code, text)
	}
	for _, mb := range []string{"alice", "robert"} {
		got := e.only(t, mb)
		if !strings.HasPrefix(got, "Return-Path: <sender@example.org>\r\nDelivered-To: team@example.test\r\nReceived: ") ||
			!strings.HasSuffix(got, msg) {
			t.Errorf("%s's copy:\n%s", mb, got)
		}
	}
	q := e.queue.all()
	if len(q) != 1 {
		t.Fatalf("queued %d messages, want the one forwarded", len(q))
	}
	m := q[0]
	if m.m.Origin != queue.FromForward || len(m.m.Rcpts) != 1 || m.m.Rcpts[0] != "partner@example.net" {
		t.Errorf("forwarded: %+v", m.m)
	}
	if !strings.HasPrefix(m.data, "Delivered-To: team@example.test\r\nReceived: ") || !strings.HasSuffix(m.data, msg) {
		t.Errorf("forwarded message:\n%s", m.data)
	}
	// The sender is rewritten at our host name, and reads back.
	local, domain, _ := strings.Cut(m.m.From, "@")
	if domain != "mx.example.test" || !srs.Is(local) {
		t.Fatalf("forwarded from <%s>", m.m.From)
	}
	if orig, err := r.Reverse(local, time.Now()); err != nil || orig != "sender@example.org" {
		t.Errorf("SRS sender reads back as %q %v", orig, err)
	}
}

func TestForwardKeepsTheNullSender(t *testing.T) {
	e, _ := aliasEnv(t)
	c := dial(t, e.smtp)
	c.must("EHLO c", 250)
	if code, text := c.send("", []string{"sales@example.test"}, msg); code != 250 {
		t.Fatalf("DATA: %d %s", code, text)
	}
	if q := e.queue.all(); len(q) != 1 || q[0].m.From != "" {
		t.Fatalf("queued: %+v", q)
	}
}

func TestBounceToSRSAddress(t *testing.T) {
	e, r := aliasEnv(t)
	addr, err := r.Forward("sender@example.org", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, e.smtp)
	c.must("EHLO c", 250)
	if code, text := c.send("", []string{addr}, msg); code != 250 {
		t.Fatalf("DATA: %d %s", code, text)
	}
	q := e.queue.all()
	if len(q) != 1 || q[0].m.From != "" || q[0].m.Origin != queue.FromForward || q[0].m.Rcpts[0] != "sender@example.org" {
		t.Fatalf("queued: %+v", q)
	}
	if strings.Contains(q[0].data, "Delivered-To:") {
		t.Errorf("a bounce passed on names our SRS address:\n%s", q[0].data)
	}
	// A long sender makes a local part past 64 octets; its bounce is taken.
	long := strings.Repeat("l", 60) + "@" + strings.Repeat("d", 50) + ".example.org"
	addr2, _ := r.Forward(long, time.Now())
	if code, text := c.send("", []string{addr2}, msg); code != 250 {
		t.Fatalf("bounce to %s: %d %s", addr2, code, text)
	}
	if q := e.queue.all(); len(q) != 2 || q[1].m.Rcpts[0] != long {
		t.Fatalf("queued: %+v", q)
	}
	// Forged: another sender under the same signature; another key.
	local, _, _ := strings.Cut(addr, "@")
	forged := strings.Replace(local, "=sender", "=victim", 1) + "@mx.example.test"
	other, _ := srs.NewWithKey("mx.example.test", []byte("somebody else's key, long enough")).Forward("sender@example.org", time.Now())
	c.must("MAIL FROM:<>", 250)
	for _, to := range []string{forged, other, "SRS0=x@mx.example.test", "SRS0=AAAAAA=AA=example.org=sender@example.test"} {
		if code, text := c.cmd("RCPT TO:<" + to + ">"); code != 550 || !strings.HasPrefix(text, "5.1.1 ") {
			t.Errorf("RCPT %s: %d %s", to, code, text)
		}
	}
	// The relay role does not send our own SRS addresses to the Internet.
	c = dial(t, e.relay)
	c.must("EHLO c", 250)
	c.must("MAIL FROM:<>", 250)
	if code, text := c.cmd("RCPT TO:<" + forged + ">"); code != 550 {
		t.Errorf("relay RCPT forged: %d %s", code, text)
	}
}

func TestTagAndUnknownTargets(t *testing.T) {
	e, _ := aliasEnv(t)
	c := dial(t, e.smtp)
	c.must("EHLO c", 250)
	if code, text := c.send("s@example.org", []string{"alice+news@example.test"}, msg); code != 250 {
		t.Fatalf("DATA: %d %s", code, text)
	}
	if got := e.only(t, "alice"); !strings.Contains(got, "\r\nDelivered-To: alice+news@example.test\r\n") {
		t.Errorf("tagged copy:\n%s", got)
	}
	c.must("MAIL FROM:<s@example.org>", 250)
	for _, to := range []string{"ghosts@example.test", "nobody+x@example.test"} {
		if code, text := c.cmd("RCPT TO:<" + to + ">"); code != 550 || !strings.HasPrefix(text, "5.1.1 ") {
			t.Errorf("RCPT %s: %d %s", to, code, text)
		}
	}
}

func TestLoopRefused(t *testing.T) {
	e, _ := aliasEnv(t)
	c := dial(t, e.smtp)
	c.must("EHLO c", 250)
	hops := strings.Repeat("Received: from a by b; Wed, 2 Dec 2026 10:00:00 +0000\r\n", maxReceived)
	for _, tc := range []struct {
		to, data string
		code     int
	}{
		{"sales@example.test", "Delivered-To: Sales@Example.Test\r\n" + msg, 554},
		{"alice+news@example.test", "Delivered-To: <alice+news@example.test>\r\n" + msg, 554},
		{"alice@example.test", "Received: from x by y; now\r\n" + hops + msg, 554},
		// Another address's Delivered-To, and 50 hops: no loop.
		{"alice@example.test", "Delivered-To: sales@example.test\r\n" + hops + msg, 250},
	} {
		code, text := c.send("s@example.org", []string{tc.to}, tc.data)
		if code != tc.code || (code == 554 && !strings.HasPrefix(text, "5.4.6 ")) {
			t.Errorf("to %s: %d %s, want %d", tc.to, code, text, tc.code)
		}
	}
	if n := len(e.files(t, "alice", "new")); n != 1 {
		t.Errorf("alice has %d messages, want the one that was no loop", n)
	}
	if q := e.queue.all(); len(q) != 0 {
		t.Errorf("a loop was queued: %+v", q)
	}
}

func TestRelayAndLocalAndForwardInOneTransaction(t *testing.T) {
	e, _ := aliasEnv(t)
	c := dial(t, e.relay)
	c.must("EHLO c", 250)
	// From our own domain: forwarded as it is, with the relay's origin.
	if code, text := c.send("alice@example.test", []string{"x@example.org", "sales@example.test"}, msg); code != 250 {
		t.Fatalf("DATA: %d %s", code, text)
	}
	q := e.queue.all()
	// The memory queue keeps a message once the next is stored.
	slices.SortFunc(q, func(a, b queuedMsg) int { return strings.Compare(a.m.Rcpts[0], b.m.Rcpts[0]) })
	if len(q) != 2 || q[0].m.Rcpts[0] != "partner@example.net" || q[1].m.Rcpts[0] != "x@example.org" {
		t.Fatalf("queued: %+v", q)
	}
	for _, m := range q {
		if m.m.From != "alice@example.test" || m.m.Origin != queue.FromRelay || !strings.HasSuffix(m.data, msg) {
			t.Errorf("queued: %+v", m)
		}
	}
	if q[0].m.ID == q[1].m.ID {
		t.Error("two queued messages share an id")
	}
	e.only(t, "alice")
	e.only(t, "robert")
}
