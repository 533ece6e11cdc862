package e2e

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// sendmail runs `facteur sendmail args...` in the instance's folder with
// input on stdin, and returns the exit status and output.
func (in *instance) sendmail(input string, args ...string) (int, string) {
	in.t.Helper()
	return in.runAs(binary, input, append([]string{"sendmail", "--config", "facteur.toml"}, args...)...)
}

func (in *instance) runAs(prog, input string, args ...string) (int, string) {
	in.t.Helper()
	cmd := exec.Command(prog, args...)
	cmd.Dir = in.dir
	cmd.Stdin = strings.NewReader(input)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), string(out)
	}
	if err != nil {
		in.t.Fatal(err)
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
		if strings.Contains(got, "Bcc") || strings.Contains(got, "carol@example.test") {
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
