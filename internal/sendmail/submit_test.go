package sendmail

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-smtp"

	"facteur/internal/smtptest"
	"facteur/internal/sysexits"
)

var noSuchUser = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user here"}

// relay is a fake relay listener that refuses the recipients of refuse.
func relay(t *testing.T, refuse map[string]*smtp.SMTPError) (*smtptest.MX, string) {
	mx := smtptest.NewMX(t, "127.0.0.1", 0, smtptest.MXOptions{
		RcptReply: func(rcpt string) *smtp.SMTPError { return refuse[rcpt] },
	})
	return mx, fmt.Sprintf("127.0.0.1:%d", mx.Port())
}

// One refused recipient does not keep the message from the others.
func TestSubmitDeliversToTheAcceptedRecipients(t *testing.T) {
	mx, addr := relay(t, map[string]*smtp.SMTPError{"nobody@example.test": noSuchUser})
	m := &Message{From: "cron@example.test", Rcpts: []string{"alice@example.test", "nobody@example.test", "bob@example.org"},
		Data: []byte("Subject: x\r\n\r\nx\r\n")}
	d, err := Submit(addr, m)
	if err != nil {
		t.Fatal(err)
	}
	var se *smtp.SMTPError
	if len(d.Refused) != 1 || d.Refused[0].Rcpt != "nobody@example.test" || !errors.As(d.Refused[0].Err, &se) || se.Code != 550 {
		t.Errorf("refused: %+v", d.Refused)
	}
	if got := mx.Messages(); len(got) != 1 || !slices.Equal(got[0].To, []string{"alice@example.test", "bob@example.org"}) {
		t.Errorf("the server got %+v", got)
	}
}

// Refused everywhere, the message goes nowhere, and the exit status says
// whether trying again may help.
func TestSubmitEveryRecipientRefused(t *testing.T) {
	full := &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 5, 3}, Message: "too many recipients"}
	mx, addr := relay(t, map[string]*smtp.SMTPError{"a@example.test": noSuchUser, "b@example.test": noSuchUser, "c@example.test": full})
	for rcpts, want := range map[string]int{"a@example.test b@example.test": sysexits.NoUser, "a@example.test c@example.test": sysexits.TempFail} {
		_, err := Submit(addr, &Message{From: "x@example.test", Rcpts: strings.Fields(rcpts), Data: []byte("\r\nx\r\n")})
		var re *RefusedError
		if !errors.As(err, &re) || len(re.Refused) != 2 || ExitCode(err) != want {
			t.Errorf("%s: %v, exit %d, want %d", rcpts, err, ExitCode(err), want)
		}
	}
	if mx.Count() != 0 {
		t.Errorf("%d messages sent", mx.Count())
	}
}

func TestBounceNamesTheRefusedRecipients(t *testing.T) {
	m := &Message{From: "cron@example.test", Rcpts: []string{"alice@example.test", "nobody@example.test"},
		Data: []byte("Subject: nightly\r\n\r\nsecret body\r\n")}
	d := &Delivery{ID: "Q1", Refused: []Refusal{{Rcpt: "nobody@example.test", Err: noSuchUser}}}
	b, err := Bounce(m, d, "mx.example.test", now)
	if err != nil {
		t.Fatal(err)
	}
	if b.From != "" || !slices.Equal(b.Rcpts, []string{"cron@example.test"}) {
		t.Errorf("bounce from <%s> to %v", b.From, b.Rcpts)
	}
	data := string(b.Data)
	for _, want := range []string{"To: <cron@example.test>\r\n", "Final-Recipient: rfc822; nobody@example.test\r\n",
		"Status: 5.1.1\r\n", "550 5.1.1 no such user here", "X-Queue-ID: Q1", "Subject: nightly"} {
		if !strings.Contains(data, want) {
			t.Errorf("no %q in\n%s", want, data)
		}
	}
	if strings.Contains(data, "rfc822; alice@") || strings.Contains(data, "secret body") {
		t.Errorf("the bounce names an accepted recipient or carries the body:\n%s", data)
	}
	if _, err := Bounce(&Message{Rcpts: m.Rcpts, Data: m.Data}, d, "mx.example.test", now); err == nil {
		t.Error("a bounce to the null sender")
	}
}

// A server that takes two recipients a transaction (452 4.5.3 beyond)
// gets the rest in the next ones; a recipient refused for good stays
// refused, and one put off in a round that takes nobody is left for
// later.
func TestSendTakesTheRestInNextTransactions(t *testing.T) {
	tooMany := &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 5, 3}, Message: "too many recipients"}
	busy := &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try again later"}
	var mu sync.Mutex
	n := 0
	mx := smtptest.NewMX(t, "127.0.0.1", 0, smtptest.MXOptions{
		MailReply: func(string) *smtp.SMTPError { mu.Lock(); defer mu.Unlock(); n = 0; return nil },
		RcptReply: func(rcpt string) *smtp.SMTPError {
			mu.Lock()
			defer mu.Unlock()
			switch {
			case rcpt == "nobody@example.test":
				return noSuchUser
			case rcpt == "busy@example.test":
				return busy
			case n == 2:
				return tooMany
			}
			n++
			return nil
		},
	})
	rcpts := []string{"a@example.test", "nobody@example.test", "b@example.test", "c@example.test", "busy@example.test", "d@example.test", "e@example.test"}
	d, err := Send(fmt.Sprintf("127.0.0.1:%d", mx.Port()), &Message{From: "cron@example.test", Rcpts: rcpts, Data: []byte("\r\nx\r\n")})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range mx.Messages() {
		got = append(got, m.To...)
	}
	slices.Sort(got)
	if want := []string{"a@example.test", "b@example.test", "c@example.test", "d@example.test", "e@example.test"}; !slices.Equal(got, want) {
		t.Errorf("the server got %v in %d messages, want %v", got, mx.Count(), want)
	}
	var refused []string
	for _, r := range d.Refused {
		refused = append(refused, fmt.Sprintf("%s later=%v", r.Rcpt, r.Later()))
	}
	if want := []string{"nobody@example.test later=false", "busy@example.test later=true"}; !slices.Equal(refused, want) {
		t.Errorf("refused %v, want %v", refused, want)
	}
}
