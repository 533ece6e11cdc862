package smtpd

import (
	"encoding/base64"
	"net/netip"
	"strings"
	"testing"

	"facteur/internal/queue"
)

// aliceMsg is msg as alice writes it: From her own address.
var aliceMsg = strings.Replace(msg, "From: a@example.org", "From: Alice <alice@example.test>", 1)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// remoteClients makes the server treat every client as coming from the
// network, as a phone on the Internet does.
func remoteClients(o *Options) { o.PlaintextAuth = func(netip.Addr) bool { return false } }

func TestSubmissionNeedsTLSThenAuth(t *testing.T) {
	e := newEnv(t, remoteClients)
	c := dial(t, e.submit)
	if ehlo := c.must("EHLO phone", 250); strings.Contains(ehlo, "AUTH") {
		t.Errorf("AUTH offered before TLS:\n%s", ehlo)
	}
	if code, text := c.cmd("AUTH PLAIN " + b64("\x00alice\x00wonderland")); code != 538 {
		t.Errorf("AUTH before TLS: %d %s", code, text)
	}
	if text := c.must("MAIL FROM:<alice@example.test>", 530); !strings.HasPrefix(text, "5.7.0") || !strings.Contains(text, "STARTTLS") {
		t.Errorf("MAIL before TLS: %q", text)
	}
	c.starttls(e.clientT)
	if ehlo := c.must("EHLO phone", 250); !strings.Contains(ehlo, "AUTH PLAIN LOGIN") {
		t.Errorf("AUTH not offered after STARTTLS:\n%s", ehlo)
	}
	if text := c.must("MAIL FROM:<alice@example.test>", 530); !strings.HasPrefix(text, "5.7.0 Authentication required") {
		t.Errorf("MAIL before AUTH: %q", text)
	}
	c.must("AUTH PLAIN "+b64("\x00alice\x00wonderland"), 235)
	code, text := c.send("alice@example.test", []string{"friend@remote.test", "bob@example.test"}, aliceMsg)
	if code != 250 {
		t.Fatalf("DATA: %d %s", code, text)
	}
	q := e.queue.all()
	if len(q) != 1 || q[0].m.Rcpts[0] != "friend@remote.test" || !strings.Contains(q[0].data, "with ESMTPSA id") {
		t.Fatalf("queued: %+v", q)
	}
	if got := e.only(t, "robert"); !strings.Contains(got, "with ESMTPSA id") {
		t.Errorf("local copy:\n%s", got)
	}
}

func TestAuthLogin(t *testing.T) {
	e := newEnv(t)
	c := dialTLS(t, e.smtps, e.clientT)
	if ehlo := c.must("EHLO phone", 250); !strings.Contains(ehlo, "AUTH PLAIN LOGIN") {
		t.Errorf("smtps does not offer AUTH:\n%s", ehlo)
	}
	if text := c.must("AUTH LOGIN", 334); text != b64("Username:") {
		t.Errorf("first challenge %q", text)
	}
	if text := c.must(b64("robert"), 334); text != b64("Password:") {
		t.Errorf("second challenge %q", text)
	}
	c.must(b64("builder"), 235)
	c.must("MAIL FROM:<bob@example.test>", 250) // robert's address per the users map
	c.must("RCPT TO:<x@remote.test>", 250)
	// With the user name on the AUTH line, only the password is asked.
	d := dialTLS(t, e.smtps, e.clientT)
	d.must("EHLO phone", 250)
	d.must("AUTH LOGIN "+b64("alice"), 334)
	d.must(b64("wonderland"), 235)
}

func TestAuthRefusals(t *testing.T) {
	e := newEnv(t)
	c := dialTLS(t, e.smtps, e.clientT)
	c.must("EHLO phone", 250)
	if text := c.must("AUTH PLAIN "+b64("\x00alice\x00guess"), 535); !strings.HasPrefix(text, "5.7.8") {
		t.Errorf("wrong password: %q", text)
	}
	if text := c.must("AUTH PLAIN "+b64("admin\x00alice\x00wonderland"), 535); !strings.HasPrefix(text, "5.7.8") {
		t.Errorf("someone else's identity: %q", text)
	}
	c.must("AUTH CRAM-MD5", 504)
	c.must("AUTH PLAIN "+b64("\x00alice\x00wonderland"), 235)
	if text := c.must("MAIL FROM:<bob@example.test>", 553); !strings.HasPrefix(text, "5.7.1") {
		t.Errorf("forged sender: %q", text)
	}
	c.must("MAIL FROM:<alice@elsewhere.org>", 553)
	c.must("MAIL FROM:<>", 250)

	// No AUTH on port 25, and no relaying for an unauthenticated client
	// on the submission port either.
	p := dial(t, e.smtp)
	if ehlo := p.must("EHLO x", 250); strings.Contains(ehlo, "AUTH") {
		t.Errorf("AUTH offered on the MX port:\n%s", ehlo)
	}
	p.must("AUTH PLAIN "+b64("\x00alice\x00wonderland"), 502)
	p.must("MAIL FROM:<alice@example.test>", 250)
	p.must("RCPT TO:<x@remote.test>", 550)
	s := dial(t, e.submit)
	s.must("EHLO x", 250)
	s.must("MAIL FROM:<alice@example.test>", 530)
}

func TestTenFailedLoginsHangUp(t *testing.T) {
	e := newEnv(t)
	c := dialTLS(t, e.smtps, e.clientT)
	c.must("EHLO guesser", 250)
	for i := 1; i < maxFailures; i++ {
		c.must("AUTH PLAIN "+b64("\x00alice\x00guess"), 535)
	}
	if text := c.must("AUTH PLAIN "+b64("\x00alice\x00guess"), 421); !strings.HasPrefix(text, "4.7.0") {
		t.Errorf("tenth failure: %q", text)
	}
	if !c.closed() {
		t.Error("connection still open after ten failed logins")
	}
	// The count is per address and survives the connection: the next
	// failure hangs up at once; a success clears it.
	d := dialTLS(t, e.smtps, e.clientT)
	d.must("EHLO guesser", 250)
	d.must("AUTH PLAIN "+b64("\x00alice\x00guess"), 421)
	f := dialTLS(t, e.smtps, e.clientT)
	f.must("EHLO guesser", 250)
	f.must("AUTH PLAIN "+b64("\x00alice\x00wonderland"), 235)
	g := dialTLS(t, e.smtps, e.clientT)
	g.must("EHLO guesser", 250)
	g.must("AUTH PLAIN "+b64("\x00alice\x00guess"), 535)
}

func TestLoopbackMayAuthWithoutTLS(t *testing.T) {
	e := newEnv(t) // loopback clients are trusted with plaintext AUTH
	c := dial(t, e.submit)
	if ehlo := c.must("EHLO cron", 250); !strings.Contains(ehlo, "AUTH PLAIN LOGIN") {
		t.Errorf("AUTH not offered to a loopback client:\n%s", ehlo)
	}
	c.must("AUTH PLAIN "+b64("\x00alice\x00wonderland"), 235)
	if code, _ := c.send("alice@example.test", []string{"x@remote.test"}, aliceMsg); code != 250 {
		t.Fatalf("DATA: %d", code)
	}
	if q := e.queue.all(); len(q) != 1 || !strings.Contains(q[0].data, "with ESMTPA id") || q[0].m.Origin != queue.FromSubmission {
		t.Errorf("queued: %+v", q)
	}
}

// TestSubmissionFromHeaderMustBeTheUsers: a logged-in user's From: header
// addresses must all be theirs, as the envelope sender must; otherwise the
// message is refused whole (no remote copy queued, no local copy stored)
// and the session goes on. The relay listener is trusted with any From.
func TestSubmissionFromHeaderMustBeTheUsers(t *testing.T) {
	e := newEnv(t)
	c := dialTLS(t, e.smtps, e.clientT)
	c.must("EHLO phone", 250)
	c.must("AUTH PLAIN "+b64("\x00alice\x00wonderland"), 235)
	rcpts := []string{"friend@remote.test", "bob@example.test"}
	for _, tc := range []struct {
		from string // the header lines
		code int
		enh  string
	}{
		{"From: a@example.org\r\n", 553, "5.7.1"},
		{"From: Alice <alice@example.test>, Bob <bob@example.test>\r\n", 553, "5.7.1"},
		{"From: Alice <alice@example.test>\r\nFrom: bob@example.test\r\n", 553, "5.7.1"},
		{"From: Alice\r\n <alice@example.test>,\r\n\tmallory@elsewhere.org\r\n", 553, "5.7.1"},
		{"FROM: alice@elsewhere.org\r\n", 553, "5.7.1"},
		{"From: not an address\r\n", 550, "5.6.0"},
		{"From: =?iso-8859-1?Q?Alice_L=E9ger?= <ALICE@Example.Test>\r\n", 250, "2.0.0"},
		{"From: alice@example.test\r\nSender: someone@elsewhere.org\r\n", 250, "2.0.0"},
	} {
		data := tc.from + "To: friend@remote.test\r\nSubject: hi\r\n\r\nFrom: a@example.org is only body text.\r\n"
		code, text := c.send("alice@example.test", rcpts, data)
		if code != tc.code || !strings.HasPrefix(text, tc.enh) {
			t.Errorf("%q: %d %s, want %d %s", tc.from, code, text, tc.code, tc.enh)
		}
	}
	if q := e.queue.all(); len(q) != 2 {
		t.Errorf("%d messages queued, want only the 2 accepted", len(q))
	}
	if got := e.files(t, "robert", "new"); len(got) != 2 {
		t.Errorf("%d local copies, want only the 2 accepted", len(got))
	}

	r := dial(t, e.relay)
	r.must("EHLO app", 250)
	if code, text := r.send("alice@example.test", []string{"x@remote.test"}, msg); code != 250 {
		t.Errorf("relay with someone else's From: %d %s", code, text)
	}
	q := e.queue.all()
	if len(q) != 3 || q[2].m.Origin != queue.FromRelay || q[0].m.Origin != queue.FromSubmission {
		t.Errorf("origins: %+v", q)
	}
}
