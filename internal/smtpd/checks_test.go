package smtpd

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
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

	"github.com/emersion/go-msgauth/dkim"

	"facteur/internal/auth"
	"facteur/internal/resolver"
	"facteur/internal/rspamd"
	"facteur/internal/smtptest"
)

// checkedEnv is newEnv with SPF, DKIM and DMARC on, against a loopback
// DNS where every sender domain allows 127.0.0.1 by SPF and signs with
// key: reject.test (p=reject), quarantine.test (p=quarantine), none.test
// (p=none) and nodmarc.test (no DMARC record).
func checkedEnv(t *testing.T, mode auth.Mode) (*env, *smtptest.DNSServer, ed25519.PrivateKey) {
	t.Helper()
	dns := smtptest.NewDNS(t)
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for d, p := range map[string]string{"reject.test": "reject", "quarantine.test": "quarantine", "none.test": "none", "nodmarc.test": ""} {
		dns.TXT(d, "v=spf1 ip4:127.0.0.1 -all")
		dns.TXT("s1._domainkey."+d, "v=DKIM1; k=ed25519; p="+base64.StdEncoding.EncodeToString(pub))
		if p != "" {
			dns.TXT("_dmarc."+d, "v=DMARC1; p="+p)
		}
	}
	r, err := resolver.New(dns.Addr(), 0)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(o *Options) {
		o.Checks = auth.New(r, "mx.example.test")
		o.CheckMode = mode
	})
	return e, dns, key
}

func signed(t *testing.T, key ed25519.PrivateKey, domain, msg string) string {
	t.Helper()
	var b strings.Builder
	if err := dkim.Sign(&b, strings.NewReader(msg), &dkim.SignOptions{Domain: domain, Selector: "s1", Signer: key}); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func mail(from string) string {
	return "From: <" + from + ">\r\nTo: alice@example.test\r\nSubject: hi\r\n\r\nHello.\r\n"
}

// sendFrom sends one message from the loopback address ip.
func sendFrom(t *testing.T, e *env, ip, from, data string) (int, string) {
	t.Helper()
	c := dialFrom(t, ip, e.smtp)
	c.expect(220)
	c.must("EHLO client.example", 250)
	return c.send(from, []string{"alice@example.test"}, data)
}

func TestChecksDecide(t *testing.T) {
	e, dns, key := checkedEnv(t, auth.Enforce)
	big := mail("a@reject.test") + strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\r\n", 3000)
	for _, tc := range []struct {
		name, ip, from, data string
		code                 int
		enhanced             string
		sub                  string // where it is stored: new or .Junk/new
		header               string // in the stored Authentication-Results
	}{
		{"aligned pass", "127.0.0.1", "a@reject.test", signed(t, key, "reject.test", mail("a@reject.test")),
			250, "", "new", "spf=pass smtp.mailfrom=reject.test;\r\n\tdkim=pass header.d=reject.test header.i=@reject.test header.s=s1;\r\n\tdmarc=pass header.from=reject.test"},
		{"aligned pass, spilled", "127.0.0.1", "a@reject.test", signed(t, key, "reject.test", big),
			250, "", "new", "dkim=pass header.d=reject.test"},
		{"forged p=reject", "127.0.0.9", "a@reject.test", mail("a@reject.test"),
			550, "5.7.1", "", ""},
		{"forged p=reject, spilled", "127.0.0.9", "a@reject.test", big,
			550, "5.7.1", "", ""},
		{"forged p=quarantine", "127.0.0.9", "a@quarantine.test", mail("a@quarantine.test"),
			250, "", ".Junk/new", "dmarc=fail"},
		{"forged p=none", "127.0.0.9", "a@none.test", mail("a@none.test"),
			250, "", "new", "dmarc=fail"},
		{"one body byte changed", "127.0.0.1", "a@none.test",
			strings.Replace(signed(t, key, "none.test", mail("a@none.test")), "Hello.", "Hellp.", 1),
			250, "", "new", "dkim=fail"},
		{"forwarded", "127.0.0.9", "list@nodmarc.test", signed(t, key, "reject.test", mail("a@reject.test")),
			250, "", "new", "dmarc=pass"},
		{"SPF fail without DMARC", "127.0.0.9", "a@nodmarc.test", mail("a@nodmarc.test"),
			550, "5.7.23", "", ""},
		{"no From", "127.0.0.1", "a@none.test", "Subject: x\r\n\r\nHi\r\n",
			550, "5.7.1", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(e.files(t, "alice", "new")) + len(e.files(t, "alice", ".Junk/new"))
			code, text := sendFrom(t, e, tc.ip, tc.from, tc.data)
			if code != tc.code || !strings.HasPrefix(text, tc.enhanced) {
				t.Fatalf("got %d %s, want %d %s", code, text, tc.code, tc.enhanced)
			}
			after := len(e.files(t, "alice", "new")) + len(e.files(t, "alice", ".Junk/new"))
			if tc.sub == "" {
				if after != before {
					t.Fatalf("refused, yet stored")
				}
				return
			}
			got := newest(t, e, tc.sub)
			want := "Authentication-Results: mx.example.test;\r\n\t"
			if !strings.HasPrefix(got, want) || !strings.Contains(got[:strings.Index(got, "\r\nReturn-Path:")], tc.header) {
				t.Errorf("stored message starts\n%.400s\nwant %q first, with %q", got, want, tc.header)
			}
			if !strings.HasSuffix(got, tc.data) {
				t.Errorf("message not stored whole after the trace headers")
			}
		})
	}
	for _, sub := range []string{"tmp", ".Junk/tmp"} {
		if left := e.files(t, "alice", sub); len(left) != 0 {
			t.Errorf("%s holds %v", sub, left)
		}
	}

	dns.ServFail("_dmarc.reject.test")
	if code, text := sendFrom(t, e, "127.0.0.9", "a@reject.test", mail("a@reject.test")); code != 451 || !strings.HasPrefix(text, "4.4.3") {
		t.Errorf("SERVFAIL on DMARC: got %d %s, want 451 4.4.3", code, text)
	}
}

// newest is the content of the last message stored in alice's sub.
func newest(t *testing.T, e *env, sub string) string {
	t.Helper()
	var last string
	var mod int64
	for _, n := range e.files(t, "alice", sub) {
		p := filepath.Join(e.root, "alice", "Maildir", sub, n)
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if m := fi.ModTime().UnixNano(); m >= mod {
			last, mod = p, m
		}
	}
	b, err := os.ReadFile(last)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestChecksRemoveForgedResults(t *testing.T) {
	e, _, _ := checkedEnv(t, auth.Enforce)
	data := "Authentication-Results: mx.example.test; dkim=pass header.d=reject.test\r\n" +
		"Authentication-Results: elsewhere.example; spf=pass\r\n" + mail("a@none.test")
	if code, text := sendFrom(t, e, "127.0.0.1", "a@none.test", data); code != 250 {
		t.Fatalf("got %d %s", code, text)
	}
	got := e.only(t, "alice")
	if n := strings.Count(got, "mx.example.test;"); n != 1 || strings.Contains(got, "dkim=pass") {
		t.Errorf("the forged verdict is still there:\n%s", got)
	}
	if !strings.Contains(got, "Authentication-Results: elsewhere.example; spf=pass\r\n") {
		t.Errorf("another server's verdict was removed:\n%s", got)
	}
}

func TestChecksTagOnlyWrites(t *testing.T) {
	e, _, _ := checkedEnv(t, auth.Tag)
	if code, text := sendFrom(t, e, "127.0.0.9", "a@reject.test", mail("a@reject.test")); code != 250 {
		t.Fatalf("tag mode: got %d %s", code, text)
	}
	if got := e.only(t, "alice"); !strings.Contains(got, "dmarc=fail") {
		t.Errorf("no verdict written:\n%s", got)
	}
}

// The relay listener's clients are trusted: nothing is checked or written.
func TestChecksSkipRelay(t *testing.T) {
	e, dns, _ := checkedEnv(t, auth.Enforce)
	c := dialFrom(t, "127.0.0.9", e.relay)
	c.expect(220)
	c.must("EHLO client.example", 250)
	if code, text := c.send("a@reject.test", []string{"alice@example.test"}, mail("a@reject.test")); code != 250 {
		t.Fatalf("relay: got %d %s", code, text)
	}
	if got := e.only(t, "alice"); strings.Contains(got, "Authentication-Results") {
		t.Errorf("relayed mail checked:\n%s", got)
	}
	if n := dns.Queries("reject.test") + dns.Queries("_dmarc.reject.test"); n != 0 {
		t.Errorf("%d lookups for relayed mail", n)
	}
}

// With rspamd too, the sender's verdicts come first: a refusal leaves
// rspamd unasked; otherwise rspamd reads the message under our
// Authentication-Results, and its edits and ours both reach the stored
// message, ours on top.
func TestChecksThenRspamd(t *testing.T) {
	var asked atomic.Int32
	var seen atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		b, _ := io.ReadAll(r.Body)
		seen.Store(string(b))
		fmt.Fprint(w, `{"action": "add header", "score": 9, "milter": {"add_headers": {"X-Spam": "Yes"}}}`)
	}))
	t.Cleanup(srv.Close)
	spam, err := rspamd.New(srv.URL, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	dns := smtptest.NewDNS(t)
	dns.TXT("reject.test", "v=spf1 ip4:127.0.0.1 -all")
	dns.TXT("_dmarc.reject.test", "v=DMARC1; p=reject")
	r, err := resolver.New(dns.Addr(), 0)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(o *Options) { o.Checks, o.Rspamd = auth.New(r, "mx.example.test"), spam })

	if code, _ := sendFrom(t, e, "127.0.0.9", "a@reject.test", mail("a@reject.test")); code != 550 || asked.Load() != 0 {
		t.Errorf("forged p=reject: %d, rspamd asked %d times; want 550 before rspamd", code, asked.Load())
	}
	if code, text := sendFrom(t, e, "127.0.0.1", "a@reject.test", mail("a@reject.test")); code != 250 {
		t.Fatalf("got %d %s", code, text)
	}
	if got, _ := seen.Load().(string); !strings.HasPrefix(got, "Authentication-Results: mx.example.test;\r\n\tspf=pass") {
		t.Errorf("rspamd read\n%.200s\nwant our verdicts on top", got)
	}
	stored := newest(t, e, ".Junk/new")
	if !strings.HasPrefix(stored, "Authentication-Results: mx.example.test;") || !strings.Contains(stored, "\r\nX-Spam: Yes\r\n") {
		t.Errorf("stored in Junk:\n%.400s\nwant our verdicts first and rspamd's header", stored)
	}
}
