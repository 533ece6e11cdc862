package remote

import (
	"fmt"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"

	"facteur/internal/smtptest"
)

// A 4xx to MAIL concerns its transaction, not the host: the session goes
// on with the next message, and each message keeps its own reply. The
// script answers like Postfix's smtp-sink -r mail, which takes RCPT and
// DATA after refusing MAIL: the client ends that DATA with a lone dot
// (RFC 2920 3.1) rather than hang up on the other messages, which were
// then left with "4.4.4 no MX host to try" and no host, never tried.
func TestMailDeferredSessionGoesOn(t *testing.T) {
	const n = 5
	e := newEnv(t)
	done := playOn(t, e, []string{"PIPELINING"}, func(s *scripted) {
		for k := range n {
			if k > 0 {
				s.expect("RSET")
			}
			s.expect("MAIL FROM:<a@sender.test>")
			s.expect("RCPT TO:<alice")
			s.expect("DATA")
			replies := fmt.Sprintf("451 4.7.1 greylisted q%d\r\n250 2.1.5 ok\r\n354 go on", k)
			if k > 0 {
				replies = "250 2.0.0 ok\r\n" + replies
			}
			s.say(replies)
			s.expect(".")
			s.say("250 2.0.0 ok")
		}
	})
	var msgs []*Message
	for k := range n {
		msgs = append(msgs, newMsg(fmt.Sprint("q", k), "alice@example.test"))
	}
	out := e.deliverSingle(msgs...)
	<-done
	for k, rs := range out {
		r := rs[0]
		if r.Status != Transient || r.Code != 451 || r.Host != "mx1.example.test" || !strings.HasSuffix(r.Text, fmt.Sprint("greylisted q", k)) {
			t.Errorf("message %d: %+v, want its own 451 from mx1.example.test", k, r)
		}
	}
}

// A 421 in the middle of a session ends it: the message it answered keeps
// that reply, and the messages the session never tried are held back with
// a reason that names the host, not "no MX host to try".
func TestSessionEndHoldsBackTheRest(t *testing.T) {
	e := newEnv(t)
	done := playOn(t, e, []string{"PIPELINING"}, func(s *scripted) {
		for _, cmd := range []string{"MAIL", "RCPT", "DATA"} {
			s.expect(cmd)
		}
		s.say("250 ok\r\n250 ok\r\n354 go on")
		s.body()
		for _, cmd := range []string{"MAIL", "RCPT", "DATA"} {
			s.expect(cmd)
		}
		s.say("250 2.0.0 queued\r\n421 4.7.0 Error: too many errors")
	})
	out := e.deliverSingle(newMsg("q0", "alice@example.test"), newMsg("q1", "alice@example.test"),
		newMsg("q2", "alice@example.test"), newMsg("q3", "alice@example.test"))
	<-done
	if r := out[0][0]; r.Status != Sent {
		t.Errorf("first message: %+v", r)
	}
	if r := out[1][0]; r.Code != 421 || r.Host != "mx1.example.test" {
		t.Errorf("second message: %+v, want the 421", r)
	}
	for _, rs := range out[2:] {
		r := rs[0]
		if r.Status != Transient || r.Host != "mx1.example.test" || r.Code != 0 ||
			r.Text != "not tried: the session with mx1.example.test[127.0.0.2] ended: 421 4.7.0 Error: too many errors" {
			t.Errorf("held back: %+v", r)
		}
	}
}

// A host that cannot be reached holds back the messages of the calls that
// follow for DeadHostTime, without a connection; a 4xx within a session
// holds back nothing.
func TestDeadHostCache(t *testing.T) {
	e := newEnv(t)
	first := e.deliverSingle(newMsg("q1", "alice@example.test"))
	if r := first[0][0]; r.Status != Transient || r.Host != "mx1.example.test" || !strings.Contains(r.Text, "connection failed") {
		t.Fatalf("no server: %+v", r)
	}
	mx1 := e.mx1(t, smtptest.MXOptions{MailReply: func(from string) *smtp.SMTPError {
		if from == "grey@sender.test" {
			return reply(451, smtp.EnhancedCode{4, 7, 1}, "greylisted")
		}
		return nil
	}})
	r := e.deliverSingle(newMsg("q2", "alice@example.test"))[0][0]
	if r.Status != Transient || r.Host != "mx1.example.test" || !strings.HasPrefix(r.Text, "held back: mx1.example.test[127.0.0.2]: connection failed") ||
		mx1.Connections() != 0 {
		t.Errorf("right after the failure: %+v, %d connections; want held back without one", r, mx1.Connections())
	}

	e.client.ForgetDeadHosts()
	if r := e.deliverSingle(newMsg("q2", "alice@example.test"))[0][0]; r.Status != Sent {
		t.Errorf("once the dead hosts are forgotten: %+v", r)
	}

	e.client.DeadHostTime = -1
	grey := newMsg("q3", "alice@example.test")
	grey.From = "grey@sender.test"
	out := e.deliverSingle(grey, newMsg("q4", "alice@example.test"))
	if out[0][0].Code != 451 || out[1][0].Status != Sent {
		t.Errorf("with the cache off: %+v", out)
	}
	e.client.DeadHostTime = 0
	if r := e.deliverSingle(newMsg("q5", "alice@example.test"))[0][0]; r.Status != Sent {
		t.Errorf("after a 451 to MAIL: %+v, want the host tried", r)
	}
}
