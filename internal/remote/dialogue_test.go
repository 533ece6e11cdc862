package remote

import (
	"log/slog"
	"strings"
	"testing"

	"facteur/internal/smtptest"
)

// At debug level, each session's dialogue is logged, both ways and above
// TLS, with the host it is with and without the message.
func TestDebugLogsTheDialogue(t *testing.T) {
	e := newEnv(t)
	var log smtptest.Buffer
	e.client.Log = slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e.client.IdleTimeout = -1 // QUIT at the end of the call
	ca := smtptest.NewCA(t, "mx1.example.test")
	e.mx1(t, smtptest.MXOptions{TLS: ca.ServerTLS()})
	wantStatus(t, e.deliverSingle(newMsg("q1", "alice@example.test")), Sent, "mx1.example.test")

	var got []string
	for _, line := range strings.Split(log.String(), "\n") {
		if _, rest, ok := strings.Cut(line, ` msg="smtp `); ok {
			got = append(got, rest)
		}
	}
	const who = ` host=mx1.example.test addr=127.0.0.2 session=1 line=`
	for _, want := range []string{
		`reply"` + who + `"220 127.0.0.2 ESMTP Service Ready"`,
		`command"` + who + `"EHLO relay.test"`,
		`command"` + who + `STARTTLS`,
		`reply"` + who + `"220 2.0.0 Ready to start TLS"`,
		`command"` + who + `"MAIL FROM:<a@sender.test> SIZE=`,
		`command"` + who + `DATA`,
		`message data"` + ` host=mx1.example.test addr=127.0.0.2 session=1 bytes=`,
		`command"` + who + `QUIT`,
	} {
		found := false
		for _, g := range got {
			found = found || strings.HasPrefix(g, want)
		}
		if !found {
			t.Errorf("no line %s in:\n%s", want, strings.Join(got, "\n"))
		}
	}
	if n := strings.Count(strings.Join(got, "\n"), `"EHLO relay.test"`); n != 2 {
		t.Errorf("EHLO logged %d times, want 2: before and after STARTTLS", n)
	}
	if strings.Contains(log.String(), "hello") {
		t.Errorf("the message body is in the log:\n%s", log.String())
	}
}
