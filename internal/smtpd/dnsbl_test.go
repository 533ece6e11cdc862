package smtpd

import (
	"bufio"
	"crypto/tls"
	"strings"
	"testing"

	"facteur/internal/dnsbl"
	"facteur/internal/resolver"
	"facteur/internal/smtptest"
)

// listsEnv is a server whose MX listeners consult one blocklist served by
// a loopback DNS: 127.0.0.2 is listed, 127.0.0.3 gets the list's error
// code, the list fails for 127.0.0.4.
func listsEnv(t *testing.T) (*env, *smtptest.DNSServer) {
	t.Helper()
	dns := smtptest.NewDNS(t)
	dns.A("2.0.0.127.bl.example", "127.0.0.2")
	dns.A("3.0.0.127.bl.example", "127.255.255.254")
	dns.ServFail("4.0.0.127.bl.example")
	r, err := resolver.New(dns.Addr(), 0)
	if err != nil {
		t.Fatal(err)
	}
	return newEnv(t, func(o *Options) { o.DNSBL = dnsbl.New(r, []string{"bl.example"}) }), dns
}

func TestListedClientRefusedAtRcptButPostmaster(t *testing.T) {
	e, dns := listsEnv(t)
	c := dialFrom(t, "127.0.0.2", e.smtp)
	c.expect(220)
	c.must("EHLO spammer.example", 250)
	c.must("MAIL FROM:<s@spammer.example>", 250)
	for _, rcpt := range []string{"alice@example.test", "bob@example.test", "nobody@example.test", "x@other.test", "x@elsewhere.example"} {
		code, text := c.cmd("RCPT TO:<" + rcpt + ">")
		if want := "5.7.1 Service unavailable; client [127.0.0.2] listed at bl.example"; code != 554 || text != want {
			t.Errorf("RCPT %s: %d %s, want 554 %s", rcpt, code, text, want)
		}
	}
	// RFC 5321 4.5.1: a listed sender can still reach a human.
	c.must("RCPT TO:<Postmaster@Example.Test>", 250)
	c.must("DATA", 354)
	c.write(msg + ".\r\n")
	c.expect(250)
	if got := e.only(t, "alice"); !strings.HasSuffix(got, msg) {
		t.Errorf("postmaster's message:\n%s", got)
	}
	// Next transaction, same connection: still listed, not asked again.
	c.must("MAIL FROM:<s@spammer.example>", 250)
	c.must("RCPT TO:<alice@example.test>", 554)
	if n := dns.Queries("2.0.0.127.bl.example"); n != 1 {
		t.Errorf("%d lookups for one connection, want 1", n)
	}
	c.must("QUIT", 221)
}

func TestBlocklistsSpareTrustedAndUnlisted(t *testing.T) {
	e, dns := listsEnv(t)
	for _, ip := range []string{"127.0.0.1", "127.0.0.3", "127.0.0.4"} {
		c := dialFrom(t, ip, e.smtp)
		c.expect(220)
		c.must("EHLO client.example", 250)
		if code, text := c.send("s@example.org", []string{"alice@example.test"}, msg); code != 250 {
			t.Errorf("client %s: %d %s, want 250", ip, code, text)
		}
	}
	// The relay's networks and logged-in users are trusted: not looked up.
	r := dialFrom(t, "127.0.0.2", e.relay)
	r.expect(220)
	r.must("EHLO app", 250)
	if code, text := r.send("app@example.test", []string{"alice@example.test"}, msg); code != 250 {
		t.Errorf("relay: %d %s", code, text)
	}
	s := dialFrom(t, "127.0.0.2", e.smtps)
	tc := tls.Client(s.conn, e.clientT)
	s.conn, s.r = tc, bufio.NewReader(tc)
	s.expect(220)
	s.must("EHLO phone", 250)
	s.must("AUTH PLAIN "+b64("\x00alice\x00wonderland"), 235)
	if code, text := s.send("alice@example.test", []string{"alice@example.test"},
		strings.Replace(msg, "a@example.org", "alice@example.test", 1)); code != 250 {
		t.Errorf("logged in on smtps: %d %s", code, text)
	}
	if n := dns.Queries("2.0.0.127.bl.example"); n != 0 {
		t.Errorf("trusted sessions looked the client up %d times", n)
	}
}
