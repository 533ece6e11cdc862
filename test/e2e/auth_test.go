package e2e

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/dkim"

	"facteur/internal/smtptest"
)

// smtplibScript sends the message on stdin with Python's smtplib from the
// source address argv[2] to the server argv[1], envelope argv[3] -> argv[4],
// and prints the reply to DATA (or to the command that failed).
const smtplibScript = `
import smtplib, sys
host, port = sys.argv[1].rsplit(":", 1)
msg = sys.stdin.buffer.read()
s = smtplib.SMTP(host, int(port), local_hostname="client.example", source_address=(sys.argv[2], 0), timeout=30)
try:
    s.ehlo()
    for code, text in (s.mail(sys.argv[3]), s.rcpt(sys.argv[4])):
        if code >= 400:
            print(code, text.decode()); sys.exit(0)
    code, text = s.data(msg)
    print(code, text.decode())
except smtplib.SMTPResponseException as e:
    print(e.smtp_code, e.smtp_error.decode())
s.quit()
`

// authheadersScript is Debian's python3-authheaders, an implementation of
// SPF, DKIM and DMARC independent of ours, judging the message on stdin
// as received from argv[2] with envelope sender argv[3], every lookup
// sent to the DNS server argv[1]. It prints its Authentication-Results.
const authheadersScript = `
import sys
import dns.resolver
host, port = sys.argv[1].rsplit(":", 1)
res = dns.resolver.Resolver(configure=False)
res.nameservers, res.port = [host], int(port)
dns.resolver.default_resolver = res  # pyspf's lookups
import authheaders
def txt(name, timeout=5):
    try:
        answer = res.resolve(name.decode() if isinstance(name, bytes) else name, "TXT", lifetime=timeout)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return None
    txt = b"".join(answer[0].strings)
    # dkimpy asks with bytes and wants bytes; the DMARC lookup, str.
    return txt if isinstance(name, bytes) else txt.decode()
msg = sys.stdin.buffer.read()
print(authheaders.authenticate_message(msg, "check.example", spf=True, ip=sys.argv[2],
    mail_from=sys.argv[3], helo="client.example", dnsfunc=txt))
`

const python = "/usr/bin/python3"

// TestInboundAuth sends mail to the MX listener with Python's smtplib from
// two loopback addresses, 127.0.0.1 which the senders' SPF records allow
// and 127.0.0.9 which they do not, and checks what facteur does with each
// and what it writes in Authentication-Results; python3-authheaders, when
// installed (.ci/run installs it), must reach the same verdicts.
func TestInboundAuth(t *testing.T) {
	if err := exec.Command(python, "-c", "import smtplib").Run(); err != nil {
		t.Skip(python + " is missing")
	}
	crossCheck := exec.Command(python, "-c", "import authheaders, spf").Run() == nil
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	record := "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der)
	dns := smtptest.NewDNS(t)
	for d, policy := range map[string]string{"reject.test": "reject", "quarantine.test": "quarantine",
		"none.test": "none", "nodmarc.test": "", "servfail.test": ""} {
		dns.TXT(d, "v=spf1 ip4:127.0.0.1 -all")
		dns.TXT("s1._domainkey."+d, record[:255], record[255:])
		if policy != "" {
			dns.TXT("_dmarc."+d, "v=DMARC1; p="+policy)
		}
	}
	dns.ServFail("_dmarc.servfail.test")
	maddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	in := setup(t, fmt.Sprintf("dns = %q\n[metrics]\nlisten = %q", dns.Addr(), maddr))
	in.start()
	maildir := filepath.Join(in.dir, "var", "mail", "alice", "Maildir")

	plain := func(from string) string {
		return "From: Someone <" + from + ">\r\nTo: alice@example.test\r\nSubject: auth\r\nMessage-ID: <" +
			strings.ReplaceAll(from, "@", ".") + "@test>\r\n\r\nHello Alice.\r\n"
	}
	sign := func(domain, msg string) string {
		var b strings.Builder
		if err := dkim.Sign(&b, strings.NewReader(msg), &dkim.SignOptions{Domain: domain, Selector: "s1", Signer: key}); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	forged := "Authentication-Results: mx.example.test; dkim=pass header.d=none.test\r\n" + plain("b@none.test")
	for _, tc := range []struct {
		name, ip, mailFrom, msg string
		reply                   string // start of the reply to DATA
		where                   string // "new", ".Junk/new" or "" (refused)
		spf, dkim, dmarc        string // the verdicts both implementations must reach
	}{
		{"aligned pass", "127.0.0.1", "a@reject.test", sign("reject.test", plain("a@reject.test")),
			"250", "new", "pass", "pass", "pass"},
		{"forged p=reject", "127.0.0.9", "a@reject.test", plain("ceo@reject.test"),
			"550 5.7.1", "", "fail", "none", "fail"},
		{"forged p=quarantine", "127.0.0.9", "a@quarantine.test", plain("a@quarantine.test"),
			"250", ".Junk/new", "fail", "none", "fail"},
		{"forged p=none", "127.0.0.9", "a@none.test", plain("a@none.test"),
			"250", "new", "fail", "none", "fail"},
		{"one body byte changed", "127.0.0.1", "a@none.test",
			strings.Replace(sign("none.test", plain("c@none.test")), "Hello Alice.", "Hello Alice!", 1),
			"250", "new", "pass", "fail", "pass"},
		{"forwarded", "127.0.0.9", "list@nodmarc.test", sign("reject.test", plain("fwd@reject.test")),
			"250", "new", "fail", "pass", "pass"},
		{"SPF fail without DMARC", "127.0.0.9", "a@nodmarc.test", plain("a@nodmarc.test"),
			"550 5.7.23", "", "fail", "none", "none"},
		{"SERVFAIL on DMARC", "127.0.0.1", "a@servfail.test", plain("a@servfail.test"),
			"451 4.4.3", "", "pass", "none", "temperror"},
		{"forged verdict of ours removed", "127.0.0.1", "b@none.test", forged,
			"250", "new", "pass", "none", "pass"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := listDir(t, filepath.Join(maildir, "new")) + listDir(t, filepath.Join(maildir, ".Junk", "new"))
			got := python3(t, tc.msg, "-c", smtplibScript, in.smtp, tc.ip, tc.mailFrom, "alice@example.test")
			if !strings.HasPrefix(got, tc.reply) {
				t.Fatalf("reply %q, want %s", got, tc.reply)
			}
			after := listDir(t, filepath.Join(maildir, "new")) + listDir(t, filepath.Join(maildir, ".Junk", "new"))
			if tc.where == "" && after != before {
				t.Errorf("refused, yet stored")
			}
			if tc.where != "" {
				stored := newestIn(t, filepath.Join(maildir, tc.where))
				ours, _, _ := strings.Cut(stored, "\r\nReturn-Path: ")
				if !strings.HasPrefix(ours, "Authentication-Results: mx.example.test;") {
					t.Fatalf("stored message does not start with our verdicts:\n%.500s", stored)
				}
				if v := verdicts(ours); v != [3]string{tc.spf, tc.dkim, tc.dmarc} {
					t.Errorf("our verdicts %v, want %s %s %s:\n%s", v, tc.spf, tc.dkim, tc.dmarc, ours)
				}
				if strings.Count(stored, "mx.example.test;") != 1 {
					t.Errorf("an incoming field with our authserv-id was kept:\n%s", stored)
				}
			}
			if crossCheck && tc.dmarc != "temperror" {
				theirs := python3(t, tc.msg, "-c", authheadersScript, dns.Addr(), tc.ip, tc.mailFrom)
				v := verdicts(theirs)
				if tc.dkim == "none" && v[1] == "fail" {
					// authheaders says fail where no signature is (RFC
					// 8601 2.7.1: none).
					v[1] = "none"
				}
				if v != [3]string{tc.spf, tc.dkim, tc.dmarc} {
					t.Errorf("authheaders: %v, want %s %s %s:\n%s", v, tc.spf, tc.dkim, tc.dmarc, theirs)
				}
			}
		})
	}
	if !crossCheck {
		t.Log("python3-authheaders not installed: verdicts not cross-checked")
	}
	for series, want := range map[string]float64{
		`facteur_inbound_verdicts_total{check="dmarc",result="pass"}`: 4,
		`facteur_inbound_verdicts_total{check="spf",result="fail"}`:   5,
		`facteur_inbound_verdicts_total{check="dkim",result="fail"}`:  1,
	} {
		if got := scrape(t, maddr, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	waitLog(t, in, "spf=fail dkim=none dmarc=fail")
}

var verdictRE = regexp.MustCompile(`\b(spf|dkim|dmarc)=([a-z]+)`)

// verdicts are the first spf, dkim and dmarc results of an
// Authentication-Results field.
func verdicts(field string) [3]string {
	var v [3]string
	for _, m := range verdictRE.FindAllStringSubmatch(field, -1) {
		i := map[string]int{"spf": 0, "dkim": 1, "dmarc": 2}[m[1]]
		if v[i] == "" {
			v[i] = m[2]
		}
	}
	return v
}

func python3(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(python, args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python3: %v\n%s", err, out)
	}
	return strings.TrimSpace(string(out))
}

func listDir(t *testing.T, dir string) int {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return len(ents)
}

// newestIn is the content of the most recent file in dir.
func newestIn(t *testing.T, dir string) string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) == 0 {
		t.Fatalf("nothing in %s: %v", dir, err)
	}
	var last string
	var mod int64
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		if m := fi.ModTime().UnixNano(); m >= mod {
			last, mod = e.Name(), m
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, last))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
