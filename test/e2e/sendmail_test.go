package e2e

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"facteur/internal/smtptest"
)

// sendmail runs `facteur sendmail args...` in the instance's folder with
// input on stdin, and returns the exit status and output.
func (in *instance) sendmail(input string, args ...string) (int, string) {
	in.t.Helper()
	return in.runAs(binary, input, append([]string{"sendmail", "--config", "facteur.toml"}, args...)...)
}

func (in *instance) runAs(prog, input string, args ...string) (int, string) {
	in.t.Helper()
	return runIn(in.t, in.dir, prog, input, args...)
}

// runIn runs prog in dir with input on stdin, without $FACTEUR_CONFIG, and
// returns the exit status and output.
func runIn(t *testing.T, dir, prog, input string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(prog, args...)
	cmd.Dir = dir
	cmd.Env = slices.DeleteFunc(os.Environ(), func(v string) bool { return strings.HasPrefix(v, "FACTEUR_CONFIG=") })
	cmd.Stdin = strings.NewReader(input)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), string(out)
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, string(out)
}

func (in *instance) waitMail(mailbox string, n int) []string {
	in.t.Helper()
	root := filepath.Join(in.dir, "var", "mail")
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := maildirNew(in.t, root, mailbox)
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			in.t.Fatalf("%s has %d messages, want %d", mailbox, len(got), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestSendmailRecipientsFromHeaders(t *testing.T) {
	in := setup(t, "")
	in.writeFile("users", "alice\nbob\ncarol\n")
	in.start()
	code, out := in.sendmail("To: alice@example.test\nCc: bob@example.test\nBcc: carol@example.test\nSubject: cron\n\nreport\n", "-t", "-f", "cron@example.test")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	for _, mb := range []string{"alice", "bob", "carol"} {
		got := in.waitMail(mb, 1)[0]
		// Each copy names its own recipient, and no other.
		own := "\r\nDelivered-To: " + mb + "@example.test\r\n"
		if !strings.Contains(got, own) {
			t.Errorf("%s's copy lacks %q:\n%s", mb, own, got)
		}
		if rest := strings.Replace(got, own, "\r\n", 1); strings.Contains(rest, "Bcc") || strings.Contains(rest, "carol@example.test") {
			t.Errorf("%s sees the blind copy:\n%s", mb, got)
		}
		if !strings.HasPrefix(got, "Return-Path: <cron@example.test>\r\n") || !strings.Contains(got, "\r\nMessage-ID: <") ||
			!strings.Contains(got, "\r\nDate: ") || !strings.HasSuffix(got, "\r\n\r\nreport\r\n") {
			t.Errorf("%s got:\n%s", mb, got)
		}
	}
}

func TestSendmailDotsAndExitCodes(t *testing.T) {
	in := setup(t, "")
	in.start()
	if code, out := in.sendmail("Subject: dots\n\nbefore\n.\nafter\n", "-i", "alice@example.test"); code != 0 {
		t.Fatalf("-i: exit %d: %s", code, out)
	}
	if got := in.waitMail("alice", 1)[0]; !strings.Contains(got, "before\r\n.\r\nafter\r\n") {
		t.Errorf("-i lost the lone dot:\n%s", got)
	}
	if code, out := in.sendmail("x\n", "nobody@example.test"); code != 67 {
		t.Errorf("unknown user: exit %d, want 67 (EX_NOUSER): %s", code, out)
	}
	if code, _ := in.sendmail("x\n"); code != 64 {
		t.Errorf("no recipient: exit %d, want 64 (EX_USAGE)", code)
	}
	// The same binary under the name sendmail.
	link := filepath.Join(in.dir, "sendmail")
	if err := os.Symlink(binary, link); err != nil {
		t.Fatal(err)
	}
	if code, out := in.runAs(link, "Subject: via link\n\nhi\n", "--config", "facteur.toml", "-oi", "alice@example.test"); code != 0 {
		t.Fatalf("sendmail link: exit %d: %s", code, out)
	}
	in.waitMail("alice", 2)
}

func TestSendmailWhileServerDownDeliversAtStart(t *testing.T) {
	in := setup(t, "")
	code, out := in.sendmail("Subject: while down\n\nhello\n", "alice@example.test")
	if code != 0 || !strings.Contains(out, "not running") {
		t.Fatalf("exit %d: %s", code, out)
	}
	if got := maildirNew(t, filepath.Join(in.dir, "var", "mail"), "alice"); len(got) != 0 {
		t.Fatal("delivered with no server running?")
	}
	in.start()
	got := in.waitMail("alice", 1)
	if !strings.Contains(got[0], "Subject: while down") {
		t.Errorf("got:\n%s", got[0])
	}
	time.Sleep(200 * time.Millisecond)
	if n := len(maildirNew(t, filepath.Join(in.dir, "var", "mail"), "alice")); n != 1 {
		t.Errorf("%d copies, want 1", n)
	}
}

// As Postfix's sendmail: an unknown recipient does not keep the message
// from the others, is named on stderr, and in a bounce to the sender, who
// reads mail more often than cron reads sendmail's stderr.
func TestSendmailDeliversToTheRecipientsTheServerTakes(t *testing.T) {
	in := setup(t, "")
	in.writeFile("users", "alice\nbob\ncarol\n")
	in.start()
	code, out := in.sendmail("To: alice@example.test\nCc: bob@example.test\nBcc: nobody@example.test\nSubject: nightly\n\nreport\n",
		"-t", "-f", "carol@example.test")
	if code != 0 || !strings.Contains(out, "<nobody@example.test>: 550 5.1.1") {
		t.Fatalf("-t with an unknown Bcc: exit %d: %s", code, out)
	}
	for _, mb := range []string{"alice", "bob"} {
		if got := in.waitMail(mb, 1)[0]; !strings.Contains(got, "Subject: nightly") {
			t.Errorf("%s got:\n%s", mb, got)
		}
	}
	bounce := in.waitMail("carol", 1)[0]
	for _, want := range []string{"Return-Path: <>\r\n", "From: Mail Delivery System", "Final-Recipient: rfc822; nobody@example.test\r\n",
		"Status: 5.1.1\r\n", "Subject: nightly"} {
		if !strings.Contains(bounce, want) {
			t.Errorf("no %q in the bounce:\n%s", want, bounce)
		}
	}
	if strings.Contains(bounce, "Final-Recipient: rfc822; alice@") || strings.Contains(bounce, "\r\nreport\r\n") {
		t.Errorf("the bounce names an accepted recipient or carries the body:\n%s", bounce)
	}

	// Recipients on the command line alike.
	code, out = in.sendmail("Subject: again\n\nx\n", "-f", "carol@example.test", "alice@example.test", "ghost@example.test")
	if code != 0 || !strings.Contains(out, "<ghost@example.test>") {
		t.Fatalf("explicit recipients: exit %d: %s", code, out)
	}
	in.waitMail("alice", 2)
	if got := in.waitMail("carol", 2); !strings.Contains(got[0]+got[1], "Final-Recipient: rfc822; ghost@example.test") {
		t.Errorf("no bounce for ghost:\n%s", got)
	}
}

// A recipient the server puts off is not bounced. facteur's relay taking
// two recipients a message (452 4.5.3 beyond) gets the others in the next
// transactions.
func TestSendmailMoreRecipientsThanAMessageTakes(t *testing.T) {
	in := setup(t, "[limits]\nmax_recipients = 2\n")
	in.writeFile("users", "alice\nbob\ncarol\ndave\nerin\n")
	in.start()
	code, out := in.sendmail("Subject: to all\n\nx\n", "-f", "alice@example.test",
		"bob@example.test", "carol@example.test", "dave@example.test", "erin@example.test")
	if code != 0 || strings.Contains(out, "bounce") {
		t.Fatalf("exit %d: %s", code, out)
	}
	for _, mb := range []string{"bob", "carol", "dave", "erin"} {
		if got := in.waitMail(mb, 1)[0]; !strings.Contains(got, "Subject: to all") {
			t.Errorf("%s got:\n%s", mb, got)
		}
	}
	time.Sleep(time.Second)
	if got := maildirNew(t, filepath.Join(in.dir, "var", "mail"), "alice"); len(got) != 0 {
		t.Errorf("the sender got a bounce:\n%s", got[0])
	}
}

// A recipient put off for longer (451) waits in the maildrop, which the
// server takes up; the others get the message at once, and nobody twice.
// The relay listener here is a fake that puts carol off, then facteur
// itself on the same address.
func TestSendmailPutOffRecipientWaitsInTheMaildrop(t *testing.T) {
	in := setup(t, "")
	in.writeFile("users", "alice\nbob\ncarol\n")
	_, port, _ := net.SplitHostPort(in.relay)
	p, _ := strconv.Atoi(port)
	fake := smtptest.NewMX(t, "127.0.0.1", p, smtptest.MXOptions{RcptReply: func(rcpt string) *smtp.SMTPError {
		if rcpt == "carol@example.test" {
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try again later"}
		}
		return nil
	}})
	code, out := in.sendmail("Subject: put off\n\nx\n", "-f", "alice@example.test", "bob@example.test", "carol@example.test")
	if code != 0 || !strings.Contains(out, "<carol@example.test>: 451 4.3.0") || !strings.Contains(out, "maildrop") {
		t.Fatalf("exit %d: %s", code, out)
	}
	if got := fake.Messages(); len(got) != 1 || !slices.Equal(got[0].To, []string{"bob@example.test"}) {
		t.Fatalf("the relay got %+v, want one message for bob", got)
	}
	fake.Stop()

	in.start()
	if got := in.waitMail("carol", 1)[0]; !strings.Contains(got, "Subject: put off") {
		t.Errorf("carol got:\n%s", got)
	}
	time.Sleep(time.Second)
	for _, mb := range []string{"alice", "bob"} {
		if got := maildirNew(t, filepath.Join(in.dir, "var", "mail"), mb); len(got) != 0 {
			t.Errorf("%s got %d messages (a bounce, or bob's copy again)", mb, len(got))
		}
	}
}
