package remote

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"

	"facteur/internal/smtptest"
)

func TestPriorityOrder(t *testing.T) {
	e := newEnv(t)
	mx1, mx2 := e.mx1(t, smtptest.MXOptions{}), e.mx2(t, smtptest.MXOptions{})
	out := e.deliver(newMsg("q1", "alice@example.test"))
	wantStatus(t, out, Sent, "mx1.example.test")
	wantCounts(t, mx1, mx2, 1, 0)
	got := mx1.Messages()[0]
	if got.From != "a@sender.test" || got.To[0] != "alice@example.test" || string(got.Data) != body {
		t.Errorf("received %+v", got)
	}
	if got.Helo != "relay.test" || got.Size != int64(len(body)) {
		t.Errorf("EHLO %q, SIZE %d; want relay.test, %d", got.Helo, got.Size, len(body))
	}
	if out[0][0].Code != 250 || out[0][0].Rcpt != "alice@example.test" {
		t.Errorf("result %+v", out[0][0])
	}
}

func TestFallsBackToSecondHost(t *testing.T) {
	for name, opts := range map[string]*smtptest.MXOptions{
		"not listening": nil,
		"421 greeting":  {Greeting421: true},
		"451 at MAIL":   {MailReply: always(reply(451, smtp.EnhancedCode{4, 3, 0}, "try later"))},
		"421 at MAIL":   {MailReply: always(reply(421, smtp.EnhancedCode{4, 3, 2}, "closing"))},
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			var mx1 *smtptest.MX
			if opts != nil {
				mx1 = e.mx1(t, *opts)
			}
			mx2 := e.mx2(t, smtptest.MXOptions{})
			wantStatus(t, e.deliver(newMsg("q1", "alice@example.test")), Sent, "mx2.example.test")
			wantCounts(t, mx1, mx2, 0, 1)
		})
	}
}

func TestAllHostsTransient(t *testing.T) {
	e := newEnv(t)
	e.mx1(t, smtptest.MXOptions{MailReply: always(reply(451, smtp.EnhancedCode{4, 3, 0}, "one"))})
	e.mx2(t, smtptest.MXOptions{MailReply: always(reply(452, smtp.EnhancedCode{4, 3, 1}, "disk full"))})
	out := e.deliver(newMsg("q1", "alice@example.test", "bob@example.test"))
	wantStatus(t, out, Transient, "mx2.example.test")
	r := out[0][1]
	if r.Code != 452 || r.Enhanced != "4.3.1" || !strings.Contains(r.Text, "mx2.example.test") || !strings.Contains(r.Text, "disk full") {
		t.Errorf("result %+v, want the last host's reply naming it", r)
	}
}

func TestRecipientRefused(t *testing.T) {
	e := newEnv(t)
	mx1 := e.mx1(t, smtptest.MXOptions{RcptReply: func(rcpt string) *smtp.SMTPError {
		if strings.HasPrefix(rcpt, "bob@") {
			return reply(550, smtp.EnhancedCode{5, 1, 1}, "no such user here")
		}
		return nil
	}})
	mx2 := e.mx2(t, smtptest.MXOptions{})
	out := e.deliver(newMsg("q1", "alice@example.test", "bob@example.test"))
	if out[0][0].Status != Sent {
		t.Errorf("alice: %+v", out[0][0])
	}
	if b := out[0][1]; b.Status != Permanent || b.Code != 550 || b.Enhanced != "5.1.1" || b.Text != "no such user here" || b.Rcpt != "bob@example.test" {
		t.Errorf("bob: %+v", b)
	}
	wantCounts(t, mx1, mx2, 1, 0)
	if got := mx1.Messages()[0].To; len(got) != 1 || got[0] != "alice@example.test" {
		t.Errorf("mx1 delivered to %v", got)
	}
}

// A host that took the transaction has the last word, even a 4xx one.
func TestNoSecondHostAfterTransaction(t *testing.T) {
	for name, opts := range map[string]smtptest.MXOptions{
		"450 at RCPT": {RcptReply: always(reply(450, smtp.EnhancedCode{4, 2, 0}, "greylisted"))},
		"451 at DATA": {DataReply: func() *smtp.SMTPError { return reply(451, smtp.EnhancedCode{4, 3, 0}, "later") }},
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			mx1, mx2 := e.mx1(t, opts), e.mx2(t, smtptest.MXOptions{})
			wantStatus(t, e.deliver(newMsg("q1", "alice@example.test")), Transient, "mx1.example.test")
			wantCounts(t, mx1, mx2, 0, 0)
			if mx2.Connections() != 0 {
				t.Errorf("mx2 contacted")
			}
		})
	}
}

func TestDataRefused(t *testing.T) {
	e := newEnv(t)
	e.mx1(t, smtptest.MXOptions{DataReply: func() *smtp.SMTPError { return reply(554, smtp.EnhancedCode{5, 7, 1}, "spam") }})
	out := e.deliver(newMsg("q1", "alice@example.test", "bob@example.test"))
	wantStatus(t, out, Permanent, "mx1.example.test")
	if out[0][1].Text != "spam" {
		t.Errorf("result %+v", out[0][1])
	}
}

func TestLookupFailures(t *testing.T) {
	e := newEnv(t)
	mx1 := e.mx1(t, smtptest.MXOptions{})
	e.dns.NullMX("null.test")
	e.dns.ServFail("broken.test")
	for domain, want := range map[string]Result{
		"null.test":   {Status: Permanent, Enhanced: "5.1.10"},
		"broken.test": {Status: Transient, Enhanced: "4.4.3"},
	} {
		out := e.client.Deliver(context.Background(), domain, []*Message{newMsg("q1", "alice@"+domain)})
		if r := out[0][0]; r.Status != want.Status || r.Enhanced != want.Enhanced || r.Code != 0 {
			t.Errorf("%s: %+v, want %v %s", domain, r, want.Status, want.Enhanced)
		}
	}
	if mx1.Connections() != 0 {
		t.Errorf("a connection was made")
	}
}

func TestImplicitMX(t *testing.T) {
	e := newEnv(t)
	e.dns.A("plain.test", "127.0.0.2")
	mx1 := e.mx1(t, smtptest.MXOptions{})
	out := e.client.Deliver(context.Background(), "plain.test", []*Message{newMsg("q1", "alice@plain.test")})
	wantStatus(t, out, Sent, "plain.test")
	wantCounts(t, mx1, nil, 1, 0)
}

func TestSeveralMessagesOneConnection(t *testing.T) {
	e := newEnv(t)
	mx1 := e.mx1(t, smtptest.MXOptions{RcptReply: func(rcpt string) *smtp.SMTPError {
		if rcpt == "nobody@example.test" {
			return reply(550, smtp.EnhancedCode{5, 1, 1}, "no such user")
		}
		return nil
	}})
	out := e.deliver(
		newMsg("q1", "alice@example.test"),
		newMsg("q2", "nobody@example.test"), // leaves a transaction open: RSET
		newMsg("q3", "bob@example.test", "carol@example.test"),
	)
	if out[0][0].Status != Sent || out[1][0].Status != Permanent || out[2][0].Status != Sent || out[2][1].Status != Sent {
		t.Errorf("results %+v", out)
	}
	if mx1.Count() != 2 || mx1.Connections() != 1 {
		t.Errorf("%d messages over %d connections, want 2 over 1", mx1.Count(), mx1.Connections())
	}
}

func TestMessageNeedsExtension(t *testing.T) {
	for name, tc := range map[string]struct {
		opts     smtptest.MXOptions
		msg      func(*Message)
		enhanced string
	}{
		"SMTPUTF8 flag":      {smtptest.MXOptions{NoSMTPUTF8: true}, func(m *Message) { m.SMTPUTF8 = true }, "5.6.7"},
		"UTF-8 address":      {smtptest.MXOptions{NoSMTPUTF8: true}, func(m *Message) { m.Rcpts[0] = "élodie@example.test" }, "5.6.7"},
		"8BITMIME":           {smtptest.MXOptions{No8BitMIME: true}, func(m *Message) { m.EightBit = true }, "5.6.3"},
		"larger than SIZE=8": {smtptest.MXOptions{MaxSize: 8}, func(*Message) {}, "5.3.4"},
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			mx1, mx2 := e.mx1(t, tc.opts), e.mx2(t, smtptest.MXOptions{})
			m := newMsg("q1", "alice@example.test")
			tc.msg(m)
			out := e.deliver(m)
			wantStatus(t, out, Permanent, "mx1.example.test")
			if r := out[0][0]; r.Enhanced != tc.enhanced || !strings.Contains(r.Text, "mx1.example.test") {
				t.Errorf("result %+v, want %s naming the host", r, tc.enhanced)
			}
			wantCounts(t, mx1, mx2, 0, 0)
		})
	}
}

func TestExtensionsUsed(t *testing.T) {
	e := newEnv(t)
	mx1 := e.mx1(t, smtptest.MXOptions{})
	m := newMsg("q1", "élodie@example.test")
	m.EightBit = true
	wantStatus(t, e.deliver(m), Sent, "mx1.example.test")
	got := mx1.Messages()[0]
	if !got.UTF8 || got.Body != smtp.Body8BitMIME || got.To[0] != "élodie@example.test" {
		t.Errorf("MAIL had SMTPUTF8 %v BODY %q, RCPT %q", got.UTF8, got.Body, got.To[0])
	}
}

func TestQuotedLocalPart(t *testing.T) {
	e := newEnv(t)
	mx1 := e.mx1(t, smtptest.MXOptions{})
	m := newMsg("q1", `john "jr" doe@example.test`)
	m.From = "a..b@sender.test"
	wantStatus(t, e.deliver(m), Sent, "mx1.example.test")
	// go-smtp's server unquotes, so the round trip gives the address back.
	got := mx1.Messages()[0]
	if got.To[0] != `john "jr" doe@example.test` || got.From != "a..b@sender.test" {
		t.Errorf("received from %q to %q", got.From, got.To[0])
	}
}

func TestBadAddressNeverSent(t *testing.T) {
	e := newEnv(t)
	mx1 := e.mx1(t, smtptest.MXOptions{})
	out := e.deliver(newMsg("q1", "alice@example.test", "evil\r\nRCPT TO:<x>@example.test"))
	if out[0][0].Status != Sent || out[0][1].Status != Permanent || out[0][1].Enhanced != "5.1.3" {
		t.Errorf("results %+v", out[0])
	}
	if to := mx1.Messages()[0].To; len(to) != 1 {
		t.Errorf("delivered to %v", to)
	}
}

func TestNullSender(t *testing.T) {
	e := newEnv(t)
	mx1 := e.mx1(t, smtptest.MXOptions{})
	m := newMsg("q1", "alice@example.test")
	m.From = ""
	wantStatus(t, e.deliver(m), Sent, "mx1.example.test")
	if from := mx1.Messages()[0].From; from != "" {
		t.Errorf("MAIL FROM %q, want <>", from)
	}
}

// A body that cannot be read to the end must not reach the server cut short.
func TestBodyReadFailure(t *testing.T) {
	e := newEnv(t)
	mx1 := e.mx1(t, smtptest.MXOptions{})
	broken := newMsg("q1", "alice@example.test")
	broken.Open = func() (io.ReadCloser, error) { return failingReader(), nil }
	unreadable := newMsg("q2", "bob@example.test")
	unreadable.Open = func() (io.ReadCloser, error) { return nil, io.ErrClosedPipe }
	out := e.deliver(unreadable, broken)
	if out[0][0].Status != Transient || out[1][0].Status != Transient {
		t.Errorf("results %+v", out)
	}
	if mx1.Count() != 0 {
		t.Errorf("a message was delivered: %q", bytes.TrimSpace(mx1.Messages()[0].Data[:40]))
	}
}

func TestCanceledContext(t *testing.T) {
	e := newEnv(t)
	mx1 := e.mx1(t, smtptest.MXOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	out := e.client.Deliver(ctx, "example.test", []*Message{newMsg("q1", "alice@example.test")})
	if out[0][0].Status != Transient {
		t.Errorf("result %+v", out[0][0])
	}
	if mx1.Count() != 0 {
		t.Errorf("delivered despite cancellation")
	}
}
