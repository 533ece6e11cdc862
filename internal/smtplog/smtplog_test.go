package smtplog

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// record keeps each log line as "C: line", "S: line" or "data: N".
type record struct{ lines []string }

func (r *record) Enabled(context.Context, slog.Level) bool { return true }
func (r *record) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *record) WithGroup(string) slog.Handler            { return r }
func (r *record) Handle(_ context.Context, rec slog.Record) error {
	attrs := map[string]string{}
	rec.Attrs(func(a slog.Attr) bool { attrs[a.Key] = a.Value.String(); return true })
	switch rec.Message {
	case "smtp command":
		r.lines = append(r.lines, "C: "+attrs["line"])
	case "smtp reply":
		r.lines = append(r.lines, "S: "+attrs["line"])
	case "smtp message data":
		r.lines = append(r.lines, "data: "+attrs["bytes"])
	default:
		r.lines = append(r.lines, "?: "+rec.Message)
	}
	return nil
}

// step is bytes from one side: client ones start with "C:", server ones
// with "S:".
func play(t *testing.T, steps []string, split bool) []string {
	t.Helper()
	r := &record{}
	d := New(slog.New(r))
	for _, s := range steps {
		side, p := s[:2], []byte(s[2:])
		feed := d.Replies
		if side == "C:" {
			feed = d.Commands
		}
		if !split {
			feed(p)
			continue
		}
		for i := range p {
			feed(p[i : i+1])
		}
	}
	return r.lines
}

func check(t *testing.T, steps []string, want ...string) {
	t.Helper()
	for _, split := range []bool{false, true} {
		got := play(t, steps, split)
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("byte by byte %v:\n%s\nwant:\n%s", split, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
}

func TestOneLinePerCommandAndReplyLineDataLeftOut(t *testing.T) {
	check(t, []string{
		"S:220 mx.example.test ESMTP\r\n",
		"C:EHLO client.example\r\n",
		"S:250-mx.example.test\r\n", "S:250-PIPELINING\r\n", "S:250 SIZE 1000\r\n",
		"C:MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n", // pipelined
		"S:250 2.0.0 ok\r\n", "S:250 2.0.0 ok\r\n", "S:354 go ahead\r\n",
		"C:Subject: secret\r\n\r\nRCPT TO:<not@a.command>\r\n..dot-stuffed\r\n.\r\nQUIT\r\n",
		"S:250 2.0.0 queued as X\r\n", "S:221 bye\r\n",
	},
		"S: 220 mx.example.test ESMTP",
		"C: EHLO client.example",
		"S: 250-mx.example.test", "S: 250-PIPELINING", "S: 250 SIZE 1000",
		"C: MAIL FROM:<a@example.org>", "C: RCPT TO:<b@example.test>", "C: DATA",
		"S: 250 2.0.0 ok", "S: 250 2.0.0 ok", "S: 354 go ahead",
		"data: 59",
		"C: QUIT",
		"S: 250 2.0.0 queued as X", "S: 221 bye")
}

func TestDataRefusedLinesAfterAreCommands(t *testing.T) {
	check(t, []string{
		"C:MAIL FROM:<>\r\nRCPT TO:<nobody@example.test>\r\nDATA\r\n",
		"S:250 ok\r\n", "S:550 no such user\r\n", "S:554 no valid recipients\r\n",
		"C:RSET\r\n", "S:250 ok\r\n",
	},
		"C: MAIL FROM:<>", "C: RCPT TO:<nobody@example.test>", "C: DATA",
		"S: 250 ok", "S: 550 no such user", "S: 554 no valid recipients",
		"C: RSET", "S: 250 ok")
	// A client that did not wait for the 354: its lines are not shown,
	// and the count of replies still holds.
	check(t, []string{
		"C:DATA\r\nSubject: x\r\n\r\n",
		"S:554 no valid recipients\r\n", "S:500 bad command\r\n", "S:500 bad command\r\n",
		"C:AUTH PLAIN c2VjcmV0\r\n", "S:235 ok\r\n",
		"C:NOOP\r\n", "S:250 ok\r\n",
	},
		"C: DATA",
		"S: 554 no valid recipients",
		"C: [2 lines sent before the reply to DATA, not logged]",
		"S: 500 bad command", "S: 500 bad command",
		"C: AUTH PLAIN [redacted]", "S: 235 ok",
		"C: NOOP", "S: 250 ok")
}

func TestAuthRedacted(t *testing.T) {
	check(t, []string{
		"C:AUTH PLAIN AGFsaWNlAHdvbmRlcmxhbmQ=\r\n", "S:535 5.7.8 no\r\n",
		"C:AUTH LOGIN\r\n", "S:334 VXNlcm5hbWU6\r\n",
		"C:YWxpY2U=\r\n", "S:334 UGFzc3dvcmQ6\r\n",
		"C:d29uZGVybGFuZA==\r\n", "S:235 2.7.0 ok\r\n",
		"C:MAIL FROM:<alice@example.test>\r\n", "S:250 ok\r\n",
	},
		"C: AUTH PLAIN [redacted]", "S: 535 5.7.8 no",
		"C: AUTH LOGIN", "S: 334 VXNlcm5hbWU6",
		"C: [redacted]", "S: 334 UGFzc3dvcmQ6",
		"C: [redacted]", "S: 235 2.7.0 ok",
		"C: MAIL FROM:<alice@example.test>", "S: 250 ok")
	// Responses sent before the challenges, behind a pipelined command:
	// still secrets, until the reply that ends the AUTH.
	check(t, []string{
		"C:RSET\r\nAUTH LOGIN\r\nYWxpY2U=\r\nd29uZGVybGFuZA==\r\n",
		"S:250 ok\r\n", "S:334 VXNlcm5hbWU6\r\n", "S:334 UGFzc3dvcmQ6\r\n", "S:235 ok\r\n",
		"C:QUIT\r\n",
	},
		"C: RSET", "C: AUTH LOGIN", "C: [redacted]", "C: [redacted]",
		"S: 250 ok", "S: 334 VXNlcm5hbWU6", "S: 334 UGFzc3dvcmQ6", "S: 235 ok",
		"C: QUIT")
}

func TestBDATChunksLeftOut(t *testing.T) {
	check(t, []string{
		"C:BDAT 12\r\nline\r\n.\r\nxyzBDAT 0 LAST\r\n",
		"S:250 ok\r\n", "S:250 queued\r\n",
		"C:QUIT\r\n",
	},
		"C: BDAT 12", "data: 12", "C: BDAT 0 LAST", "data: 0",
		"S: 250 ok", "S: 250 queued", "C: QUIT")
}

func TestLongLineCut(t *testing.T) {
	long := strings.Repeat("a", 2000)
	got := play(t, []string{"C:NOOP " + long + "\r\n"}, false)
	want := fmt.Sprintf("C: NOOP %s [cut: 2007 bytes in all]", long[:maxLine-len("NOOP ")])
	if len(got) != 1 || got[0] != want {
		t.Errorf("got %q", got)
	}
}
