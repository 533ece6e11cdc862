package smtptest

import (
	"crypto/tls"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/miekg/dns"
)

func query(t *testing.T, s *DNSServer, name string, qtype uint16, network string) *dns.Msg {
	t.Helper()
	m := new(dns.Msg).SetQuestion(dns.Fqdn(name), qtype)
	c := &dns.Client{Net: network, Timeout: 2 * time.Second}
	r, _, err := c.Exchange(m, s.Addr())
	if err != nil {
		t.Fatalf("query %s: %v", name, err)
	}
	return r
}

func TestDNSRecords(t *testing.T) {
	s := NewDNS(t)
	s.MX("Example.TEST.", 10, "mx1.example.test")
	s.A("mx1.example.test", "127.0.0.2")
	s.AAAA("mx1.example.test", "::1")
	s.NXDomain("gone.test")
	s.ServFail("broken.test")

	r := query(t, s, "example.test", dns.TypeMX, "udp")
	if len(r.Answer) != 1 || r.Answer[0].(*dns.MX).Mx != "mx1.example.test." {
		t.Errorf("MX answer = %v", r.Answer)
	}
	r = query(t, s, "MX1.example.test", dns.TypeAAAA, "tcp")
	if len(r.Answer) != 1 || r.Answer[0].(*dns.AAAA).AAAA.String() != "::1" {
		t.Errorf("AAAA answer over TCP = %v", r.Answer)
	}
	if r := query(t, s, "unknown.test", dns.TypeA, "udp"); r.Rcode != dns.RcodeSuccess || len(r.Answer) != 0 {
		t.Errorf("unknown name: rcode %d, answer %v; want NODATA", r.Rcode, r.Answer)
	}
	if r := query(t, s, "gone.test", dns.TypeMX, "udp"); r.Rcode != dns.RcodeNameError {
		t.Errorf("NXDomain rcode = %d", r.Rcode)
	}
	if r := query(t, s, "broken.test", dns.TypeMX, "udp"); r.Rcode != dns.RcodeServerFailure {
		t.Errorf("ServFail rcode = %d", r.Rcode)
	}
	if got := s.Queries("example.test"); got != 1 {
		t.Errorf("Queries(example.test) = %d, want 1", got)
	}
}

func TestDNSTruncatesOverUDP(t *testing.T) {
	s := NewDNS(t)
	for i := range 100 {
		s.A("big.test", fmt.Sprintf("127.0.1.%d", i))
	}
	if r := query(t, s, "big.test", dns.TypeA, "udp"); !r.Truncated {
		t.Errorf("100 A records over plain UDP not truncated")
	}
	if r := query(t, s, "big.test", dns.TypeA, "tcp"); r.Truncated || len(r.Answer) != 100 {
		t.Errorf("over TCP: truncated %v, %d records", r.Truncated, len(r.Answer))
	}
}

func TestDNSTimeout(t *testing.T) {
	s := NewDNS(t)
	s.Timeout("slow.test")
	m := new(dns.Msg).SetQuestion("slow.test.", dns.TypeA)
	c := &dns.Client{Timeout: 100 * time.Millisecond}
	if _, _, err := c.Exchange(m, s.Addr()); err == nil {
		t.Fatal("muted name answered")
	}
}

func TestMXReceives(t *testing.T) {
	ca := NewCA(t, "mx.test", "127.0.0.2")
	port := FreePortOn(t, "127.0.0.2", "127.0.0.3")
	mx := NewMX(t, "127.0.0.2", port, MXOptions{
		TLS: ca.ServerTLS(),
		RcptReply: func(rcpt string) *smtp.SMTPError {
			if strings.HasPrefix(rcpt, "nobody@") {
				return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
			}
			return nil
		},
	})
	c, err := smtp.DialStartTLS("127.0.0.2:"+strconv.Itoa(port), &tls.Config{RootCAs: ca.Pool(), ServerName: "mx.test"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Mail("a@example.test", nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("nobody@example.test", nil); err == nil {
		t.Error("RcptReply ignored")
	}
	if err := c.Rcpt("b@example.test", nil); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("Subject: hi\r\n\r\nhello\r\n"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	c.Quit()

	mx.Wait(t, 1, 5*time.Second)
	got := mx.Messages()[0]
	if !got.TLS || got.From != "a@example.test" || len(got.To) != 1 || got.To[0] != "b@example.test" {
		t.Errorf("received %+v", got)
	}
	if mx.Connections() != 1 {
		t.Errorf("Connections() = %d", mx.Connections())
	}
}

func TestMXStopStartAndGreeting421(t *testing.T) {
	mx := NewMX(t, "127.0.0.1", 0, MXOptions{Greeting421: true})
	addr := "127.0.0.1:" + strconv.Itoa(mx.Port())
	if _, err := smtp.Dial(addr); err != nil {
		t.Fatal(err)
	}
	c, _ := smtp.Dial(addr)
	if err := c.Hello("client.test"); err == nil || !strings.Contains(err.Error(), "421") {
		t.Errorf("greeting: %v, want 421", err)
	}
	mx.Stop()
	if _, err := smtp.Dial(addr); err == nil {
		t.Error("dial succeeded after Stop")
	}
	mx.Start()
	if _, err := smtp.Dial(addr); err != nil {
		t.Errorf("dial after Start: %v", err)
	}
}

func TestMXNo8BitMIME(t *testing.T) {
	for _, hide := range []bool{false, true} {
		mx := NewMX(t, "127.0.0.1", 0, MXOptions{No8BitMIME: hide, NoSMTPUTF8: true})
		c, err := smtp.Dial("127.0.0.1:" + strconv.Itoa(mx.Port()))
		if err != nil {
			t.Fatal(err)
		}
		if ok, _ := c.Extension("8BITMIME"); ok == hide {
			t.Errorf("No8BitMIME %v: 8BITMIME advertised %v", hide, ok)
		}
		if ok, _ := c.Extension("SMTPUTF8"); ok {
			t.Error("SMTPUTF8 advertised with NoSMTPUTF8")
		}
		c.Close()
	}
}

// One setup picks several ports before a server binds any of them: a port
// handed out twice would make the second listener's bind fail.
func TestFreePortOnNeverRepeats(t *testing.T) {
	seen := map[int]bool{}
	for range 2000 {
		p := FreePortOn(t, "127.0.0.1")
		if seen[p] {
			t.Fatalf("port %d returned twice", p)
		}
		seen[p] = true
	}
}
