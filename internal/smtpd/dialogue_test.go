package smtpd

import (
	"log/slog"
	"regexp"
	"strings"
	"testing"

	"facteur/internal/smtptest"
)

// debugLog sends the server log, at debug level, to buf.
func debugLog(buf *smtptest.Buffer) envOpt {
	return func(o *Options) {
		o.Log = slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
}

// At debug level, each session's dialogue is logged both ways, read above
// TLS, without the password or the message.
func TestDebugLogsTheDialogue(t *testing.T) {
	var log smtptest.Buffer
	e := newEnv(t, debugLog(&log))
	c := dial(t, e.submit)
	c.must("EHLO c", 250)
	c.starttls(e.clientT)
	c.must("EHLO after.tls", 250)
	c.must("AUTH PLAIN "+b64("\x00alice\x00wonderland"), 235)
	c.must("AUTH LOGIN", 503) // already logged in
	code, _ := c.send("alice@example.test", []string{"bob@remote.test"}, "Subject: private matters\r\n\r\nbody\r\n")
	if code != 250 {
		t.Fatalf("DATA: %d", code)
	}
	if n := e.srv.sessionCount(); n != 1 {
		t.Errorf("%d servers of their own, want 1 for the session", n)
	}
	c.must("QUIT", 221)
	waitFor(t, func() bool { return strings.Contains(log.String(), "connection closed") && e.srv.sessionCount() == 0 })
	out := log.String()
	id := regexp.MustCompile(`msg="connection opened" conn=(\d+) listener=submission`).FindStringSubmatch(out)
	if id == nil {
		t.Fatalf("no connection opened:\n%s", out)
	}
	var got []string
	for _, line := range strings.Split(out, "\n") {
		if m := regexp.MustCompile(`msg="smtp (command|reply|message data)" conn=(\d+) (.*)`).FindStringSubmatch(line); m != nil {
			if m[2] != id[1] {
				t.Errorf("conn=%s, want %s: %s", m[2], id[1], line)
			}
			got = append(got, m[1]+" "+m[3])
		}
	}
	for _, want := range []string{
		`reply line="220 mx.example.test ESMTP Service Ready"`,
		`command line="EHLO c"`,
		`reply line="250-Hello c"`,
		`command line=STARTTLS`,
		`command line="EHLO after.tls"`,
		`command line="AUTH PLAIN [redacted]"`,
		`reply line="235 2.0.0 Authentication succeeded"`,
		`command line="MAIL FROM:<alice@example.test>"`,
		`command line=DATA`,
		`message data bytes=34`,
		`command line=QUIT`,
	} {
		found := false
		for _, g := range got {
			found = found || strings.HasPrefix(g, want)
		}
		if !found {
			t.Errorf("no line %s in:\n%s", want, strings.Join(got, "\n"))
		}
	}
	for _, secret := range []string{b64("\x00alice\x00wonderland"), "wonderland", "private matters"} {
		if strings.Contains(out, secret) {
			t.Errorf("the log shows %q:\n%s", secret, out)
		}
	}
}

// Below debug, sessions log no dialogue.
func TestNoDialogueBelowDebug(t *testing.T) {
	var log smtptest.Buffer
	e := newEnv(t, func(o *Options) { o.Log = slog.New(slog.NewTextHandler(&log, nil)) })
	c := dial(t, e.smtp)
	c.must("EHLO c", 250)
	c.must("QUIT", 221)
	waitFor(t, func() bool { return strings.Contains(log.String(), "connection closed") })
	if strings.Contains(log.String(), `msg="smtp `) {
		t.Errorf("dialogue logged at info:\n%s", log.String())
	}
}

func (s *Server) sessionCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}
