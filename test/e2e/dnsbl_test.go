package e2e

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"

	"facteur/internal/smtptest"
)

// dialFrom opens an SMTP session to addr from a chosen loopback address
// (Linux routes all of 127/8 to lo).
func dialFrom(t *testing.T, local, addr string) *smtp.Client {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c := smtp.NewClient(nc)
	t.Cleanup(func() { c.Close() })
	if err := c.Hello("client.example.org"); err != nil {
		t.Fatal(err)
	}
	return c
}

// A client that a DNS blocklist names is refused at RCPT, except for the
// postmaster; a list's error code lists no one; clients it does not name
// are served as before.
func TestDNSBL(t *testing.T) {
	dns := smtptest.NewDNS(t)
	dns.A("2.0.0.127.zen.example", "127.0.0.2")
	dns.A("3.0.0.127.zen.example", "127.255.255.254")
	maddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	in := setup(t, fmt.Sprintf("dns = %q\n[inbound]\ndnsbl = [\"zen.example\"]\n[metrics]\nlisten = %q", dns.Addr(), maddr))
	in.writeFile("users", "alice\nbob@example.test robert\npostmaster alice\n")
	in.start()

	c := dialFrom(t, "127.0.0.2", in.smtp)
	if err := c.Mail("s@spam.example", nil); err != nil {
		t.Fatal(err)
	}
	err := c.Rcpt("bob@example.test", nil)
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 554 || se.EnhancedCode != (smtp.EnhancedCode{5, 7, 1}) ||
		se.Message != "Service unavailable; client [127.0.0.2] listed at zen.example" {
		t.Fatalf("RCPT from a listed client: %v, want 554 5.7.1 naming the list", err)
	}
	if err := c.Rcpt("postmaster@example.test", nil); err != nil {
		t.Fatalf("RCPT postmaster from a listed client: %v", err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte(message))
	if err := w.Close(); err != nil {
		t.Fatalf("message to postmaster: %v", err)
	}
	c.Quit()

	for _, ip := range []string{"127.0.0.1", "127.0.0.3"} {
		c := dialFrom(t, ip, in.smtp)
		if err := c.SendMail("s@example.org", []string{"bob@example.test"}, strings.NewReader(message)); err != nil {
			t.Errorf("client %s: %v", ip, err)
		}
		c.Quit()
	}
	if got := len(maildirNew(t, in.dir+"/var/mail", "robert")); got != 2 {
		t.Errorf("robert has %d messages, want 2", got)
	}
	if got := len(maildirNew(t, in.dir+"/var/mail", "alice")); got != 1 {
		t.Errorf("alice (postmaster) has %d messages, want 1", got)
	}
	waitLog(t, in, "error code 127.255.255.254")
	for result, want := range map[string]float64{"listed": 1, "clean": 1, "error": 1} {
		series := `facteur_inbound_verdicts_total{check="dnsbl",result="` + result + `"}`
		if got := scrape(t, maddr, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
}
