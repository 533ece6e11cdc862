package smtpd

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"facteur/internal/rspamd"
)

// fakeRspamd answers every check with the action named in the message's
// Subject, and counts the checks.
func fakeRspamd(t *testing.T, checks *atomic.Int32) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		checks.Add(1)
		b, _ := io.ReadAll(r.Body)
		_, after, _ := strings.Cut(string(b), "Subject: ")
		action, _, _ := strings.Cut(after, "\r\n")
		fmt.Fprintf(w, `{"action": %q, "score": 9, "messages": {"smtp_message": "said %s"},
			"milter": {"add_headers": {"X-Spam-Status": "verdict %s"}, "remove_headers": {"X-Spam-Status": 0}}}`,
			action, action, action)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func rspamdEnv(t *testing.T, url string, tempfail bool) *env {
	c, err := rspamd.New(url, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return newEnv(t, func(o *Options) { o.Rspamd, o.RspamdTempfail = c, tempfail })
}

func TestRspamdVerdicts(t *testing.T) {
	var checks atomic.Int32
	e := rspamdEnv(t, fakeRspamd(t, &checks), false)
	c := dial(t, e.smtp)
	c.must("EHLO client.example.org", 250)
	for _, tc := range []struct{ action, want string }{
		{"reject", "550 5.7.1 said reject"},
		{"soft reject", "451 4.7.1 said soft reject"},
		{"greylist", "451 4.7.1 said greylist"},
		{"no action", "250 "},
		{"add header", "250 "},
		{"rewrite subject", "250 "},
	} {
		code, text := c.send("s@example.org", []string{"alice@example.test"},
			"Subject: "+tc.action+"\r\nX-Spam-Status: forged\r\n\r\nbody\r\n")
		if got := fmt.Sprintf("%d %s", code, text); !strings.HasPrefix(got, tc.want) {
			t.Errorf("%s: %s, want %s", tc.action, got, tc.want)
		}
	}
	inbox := e.only(t, "alice")
	if !strings.Contains(inbox, "X-Spam-Status: verdict no action\r\n") || strings.Contains(inbox, "forged") {
		t.Errorf("inbox message without rspamd's header changes:\n%s", inbox)
	}
	junk := e.files(t, "alice", ".Junk/new")
	if len(junk) != 2 {
		t.Fatalf(".Junk/new holds %v, want the two spams", junk)
	}
	for _, name := range junk {
		b, err := os.ReadFile(filepath.Join(e.root, "alice", "Maildir", ".Junk", "new", name))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), "X-Spam-Status: verdict") || strings.Contains(string(b), "forged") {
			t.Errorf("junk message:\n%s", b)
		}
	}
	if tmp := e.files(t, "alice", "tmp"); len(tmp) != 0 {
		t.Errorf("tmp/ holds %v", tmp)
	}
	// The relay's clients are trusted: not checked.
	before := checks.Load()
	r := dial(t, e.relay)
	r.must("EHLO app", 250)
	if code, text := r.send("app@example.test", []string{"alice@example.test"}, "Subject: reject\r\n\r\nx\r\n"); code != 250 {
		t.Errorf("relay: %d %s", code, text)
	}
	if checks.Load() != before {
		t.Error("a message from the relay listener was checked")
	}
}

func TestRspamdDown(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there now
	e := rspamdEnv(t, url, false)
	c := dial(t, e.smtp)
	c.must("EHLO client.example.org", 250)
	if code, text := c.send("s@example.org", []string{"alice@example.test"}, msg); code != 250 {
		t.Errorf("rspamd down, on error accept: %d %s", code, text)
	}
	e.only(t, "alice")

	e = rspamdEnv(t, url, true)
	c = dial(t, e.smtp)
	c.must("EHLO client.example.org", 250)
	code, text := c.send("s@example.org", []string{"alice@example.test"}, msg)
	if got := fmt.Sprintf("%d %s", code, text); got != "451 4.7.1 Content filter unavailable, try again later" {
		t.Errorf("rspamd down, on error tempfail: %s", got)
	}
	if n := e.files(t, "alice", "new"); len(n) != 0 {
		t.Errorf("stored %v", n)
	}
	// The session goes on.
	c.must("NOOP", 250)
}
