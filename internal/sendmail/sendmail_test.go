package sendmail

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"facteur/internal/sysexits"
)

func TestParseArgs(t *testing.T) {
	o, err := ParseArgs([]string{"-t", "-oi", "-fme@example.org", "-F", "Me Myself", "-oem", "-B", "8BITMIME", "--config", "f.toml", "a@x", "--", "-b@x"})
	if err != nil {
		t.Fatal(err)
	}
	want := Options{From: "me@example.org", FullName: "Me Myself", FromHeaders: true, IgnoreDots: true,
		Rcpts: []string{"a@x", "-b@x"}, ConfigFile: "f.toml"}
	if !reflect.DeepEqual(o, want) {
		t.Errorf("got %+v\nwant %+v", o, want)
	}
	if o, _ := ParseArgs([]string{"-f", "<x@y>", "-i", "r@z"}); o.From != "x@y" || !o.IgnoreDots {
		t.Errorf("-f with a separate value: %+v", o)
	}
	for _, bad := range [][]string{{"-bs"}, {"-f"}, {"-Q"}} {
		if _, err := ParseArgs(bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

var now = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

func TestComposeRecipientsFromHeaders(t *testing.T) {
	in := "To: Alice <alice@example.test>, bob@example.test\nCc: carol@example.test\nBcc: secret@example.test,\n  hidden@example.test\nSubject: hi\n\nbody line\n"
	m, err := Compose(strings.NewReader(in), Options{FromHeaders: true, Rcpts: []string{"extra@example.test"}}, "me@host.test", "host.test", now)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"extra@example.test", "alice@example.test", "bob@example.test", "carol@example.test", "secret@example.test", "hidden@example.test"}
	if !reflect.DeepEqual(m.Rcpts, want) {
		t.Errorf("rcpts %v", m.Rcpts)
	}
	data := string(m.Data)
	if strings.Contains(data, "Bcc") || strings.Contains(data, "secret@") || strings.Contains(data, "hidden@") {
		t.Errorf("blind copies visible:\n%s", data)
	}
	for _, h := range []string{"From: <me@host.test>\r\n", "Date: Sun, 22 Nov 2026 10:00:00 +0000\r\n", "Message-ID: <20261122100000.", "@host.test>\r\n"} {
		if !strings.Contains(data, h) {
			t.Errorf("missing %q in\n%s", h, data)
		}
	}
	if !strings.HasSuffix(data, "\r\n\r\nbody line\r\n") || strings.Contains(strings.ReplaceAll(data, "\r\n", ""), "\n") {
		t.Errorf("line endings:\n%q", data)
	}
}

func TestComposeKeepsExistingHeadersAndNames(t *testing.T) {
	in := "From: boss@example.test\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <keep@x>\r\n\r\nhi\r\n"
	m, err := Compose(strings.NewReader(in), Options{Rcpts: []string{"a@b"}}, "me@host.test", "host.test", now)
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Data) != in {
		t.Errorf("a complete message was changed:\n%q", m.Data)
	}
	m, _ = Compose(strings.NewReader("hi\n"), Options{Rcpts: []string{"a@b"}, FullName: "Jöhn Doe"}, "me@host.test", "host.test", now)
	if !strings.HasPrefix(string(m.Data), "From: =?utf-8?q?J=C3=B6hn_Doe?= <me@host.test>\r\n") || !strings.HasSuffix(string(m.Data), "\r\n\r\nhi\r\n") {
		t.Errorf("headerless input:\n%s", m.Data)
	}
}

func TestComposeDots(t *testing.T) {
	in := "Subject: dots\n\nbefore\n.\nafter\n"
	m, _ := Compose(strings.NewReader(in), Options{Rcpts: []string{"a@b"}}, "me@h", "h", now)
	if strings.Contains(string(m.Data), "after") {
		t.Error("a lone dot did not end the message")
	}
	m, _ = Compose(strings.NewReader(in), Options{Rcpts: []string{"a@b"}, IgnoreDots: true}, "me@h", "h", now)
	if !strings.Contains(string(m.Data), "before\r\n.\r\nafter\r\n") {
		t.Errorf("-i: %q", m.Data)
	}
	if _, err := Compose(strings.NewReader(in), Options{}, "me@h", "h", now); !errors.Is(err, ErrNoRecipients) {
		t.Errorf("no recipients: %v", err)
	}
	if _, err := Compose(strings.NewReader("To: not an address\n\nx\n"), Options{FromHeaders: true}, "me@h", "h", now); err == nil {
		t.Error("a broken To: accepted with -t")
	}
}

func TestExitCode(t *testing.T) {
	for err, want := range map[error]int{
		nil:           sysexits.OK,
		ErrNotRunning: sysexits.TempFail,
		&smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}}: sysexits.TempFail,
		&smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}}: sysexits.NoUser,
		&smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}}: sysexits.Unavailable,
	} {
		if got := ExitCode(err); got != want {
			t.Errorf("%v: %d, want %d", err, got, want)
		}
	}
}
