package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/miekg/dns"

	"facteur/internal/dkim"
	"facteur/internal/smtptest"
)

// keygen runs `facteur dkim keygen` and returns the record line it
// printed (the one that is not a zone-file comment).
func (in *instance) keygen(args ...string) string {
	in.t.Helper()
	code, out := in.runAs(binary, "", append([]string{"dkim", "keygen", "--config", "facteur.toml"}, args...)...)
	if code != 0 {
		in.t.Fatalf("facteur dkim keygen %v: exit %d\n%s", args, code, out)
	}
	var records []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if !strings.HasPrefix(line, ";") {
			records = append(records, line)
		}
	}
	if len(records) != 1 {
		in.t.Fatalf("keygen printed %d records:\n%s", len(records), out)
	}
	return records[0]
}

// dkimpyScript verifies every DKIM signature of the message on stdin with
// Debian's dkimpy, the keys asked of the DNS server named by argv[1], and
// prints one JSON line per signature.
const dkimpyScript = `
import json, sys
import dkim, dns.resolver
host, port = sys.argv[1].rsplit(":", 1)
res = dns.resolver.Resolver(configure=False)
res.nameservers, res.port = [host], int(port)
def txt(name, timeout=5):
    try:
        answer = res.resolve(name.decode(), "TXT", lifetime=timeout)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return None
    return b"".join(answer[0].strings)
msg = sys.stdin.buffer.read()
d = dkim.DKIM(msg)
n = len([1 for k, v in d.headers if k.lower() == b"dkim-signature"])
for i in range(n):
    try:
        ok, err = d.verify(idx=i, dnsfunc=txt), ""
    except dkim.DKIMException as e:
        ok, err = False, str(e)
    f = {k.decode(): v.decode() for k, v in d.signature_fields.items() if k in (b"d", b"s", b"a", b"x", b"t", b"h")}
    print(json.dumps({"pass": bool(ok), "err": err, **f}))
`

type verdict struct {
	Pass    bool
	Err     string
	D, S, A string
	X, T, H string
}

// dkimpy returns a verifier of what a fake MX received, or skips the test
// when python3-dkim is not installed (.ci/run installs it).
func dkimpy(t *testing.T, dnsAddr string) func([]byte) []verdict {
	t.Helper()
	const python = "/usr/bin/python3"
	if err := exec.Command(python, "-c", "import dkim, dns.resolver").Run(); err != nil {
		t.Skip("python3-dkim (dkimpy) is not installed for " + python)
	}
	script := filepath.Join(t.TempDir(), "verify.py")
	if err := os.WriteFile(script, []byte(dkimpyScript), 0o600); err != nil {
		t.Fatal(err)
	}
	return func(msg []byte) []verdict {
		t.Helper()
		cmd := exec.Command(python, script, dnsAddr)
		cmd.Stdin = bytes.NewReader(msg)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("dkimpy: %v\n%s", err, out)
		}
		var vs []verdict
		dec := json.NewDecoder(bytes.NewReader(out))
		for dec.More() {
			var v verdict
			if err := dec.Decode(&v); err != nil {
				t.Fatalf("dkimpy said %q: %v", out, err)
			}
			vs = append(vs, v)
		}
		return vs
	}
}

// TestDKIMSignaturesVerifyWithDkimpy: mail relayed to a remote domain
// carries a signature per key of its From domain (or of the nearest parent
// with keys, for a bounce from MAILER-DAEMON@<hostname>), which an
// independent verifier accepts with the keys published exactly as keygen
// printed them, and refuses once a body byte changes.
func TestDKIMSignaturesVerifyWithDkimpy(t *testing.T) {
	w := newRelayWorld(t, "min_backoff = \"1s\"\n[dkim]\nexpiration = \"2h\"\n")
	verify := dkimpy(t, w.dns.Addr())
	w.twoMX()
	mx := w.mx("127.0.0.2", smtptest.MXOptions{RcptReply: func(rcpt string) *smtp.SMTPError {
		if rcpt == "nobody@remote.test" {
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
		}
		return nil
	}})
	for _, args := range [][]string{
		{"--domain", "example.test", "--selector", "r"}, // 2048 bits: a record of two strings
		{"--domain", "example.test", "--selector", "e", "--algorithm", "ed25519"},
		{"--domain", "rsa.test", "--selector", "r", "--bits", "1024"},
		{"--domain", "ed.test", "--algorithm", "ed25519"},
	} {
		w.dns.RR(w.keygen(args...))
	}
	w.start()

	for _, from := range []string{"alice@example.test", "x@rsa.test", "y@sub.ed.test", "z@nokey.test"} {
		msg := fmt.Sprintf("From: Someone <%s>\r\nTo: <bob@remote.test>\r\nSubject: from %s\r\n\r\nHello.\r\n", from, from)
		if err := send(w.relay, from, []string{"bob@remote.test"}, msg); err != nil {
			t.Fatal(err)
		}
	}
	// Refused for good by the MX: the bounce goes back to the remote sender.
	if err := send(w.relay, "someone@remote.test", []string{"nobody@remote.test"}, message); err != nil {
		t.Fatal(err)
	}
	mx.Wait(t, 5, 20*time.Second)

	got := map[string][]verdict{} // by Subject, "bounce" for the bounce
	for _, m := range mx.Messages() {
		label := "bounce"
		if !bytes.Contains(m.Data, []byte("From: Mail Delivery System <MAILER-DAEMON@mx.example.test>")) {
			subject := regexp.MustCompile(`(?m)^Subject: (.*)\r$`).FindSubmatch(m.Data)
			if subject == nil {
				t.Fatalf("no Subject in\n%s", m.Data)
			}
			label = string(subject[1])
		}
		got[label] = verify(m.Data)
		if label == "from alice@example.test" {
			// One changed body byte, and no signature holds.
			changed := bytes.Replace(m.Data, []byte("Hello."), []byte("Hello!"), 1)
			for _, v := range verify(changed) {
				if v.Pass {
					t.Errorf("signature %s/%s still valid after the body changed", v.D, v.S)
				}
			}
		}
	}
	dual := []string{"example.test/e ed25519-sha256", "example.test/r rsa-sha256"}
	for label, want := range map[string][]string{
		"from alice@example.test": dual,
		"from x@rsa.test":         {"rsa.test/r rsa-sha256"},
		"from y@sub.ed.test":      {"ed.test/" + dkim.DefaultSelector(time.Now(), "ed25519") + " ed25519-sha256"},
		"from z@nokey.test":       nil,
		"bounce":                  dual, // From MAILER-DAEMON@mx.example.test
	} {
		vs, ok := got[label]
		if !ok {
			t.Errorf("%s: not received", label)
		}
		var names []string
		for _, v := range vs {
			names = append(names, v.D+"/"+v.S+" "+v.A)
			if !v.Pass {
				t.Errorf("%s: signature %s/%s refused by dkimpy: %s", label, v.D, v.S, v.Err)
			}
			if x, _ := strconv.Atoi(v.X); v.T == "" || x-mustAtoi(t, v.T) != 7200 {
				t.Errorf("%s: t=%s x=%s, want [dkim] expiration of 2h", label, v.T, v.X)
			}
			for _, f := range []string{"from:from", "subject:subject", "date", "message-id"} {
				if !strings.Contains(v.H, f) {
					t.Errorf("%s: h=%s lacks %s", label, v.H, f)
				}
			}
		}
		slices.Sort(names)
		if !slices.Equal(names, want) {
			t.Errorf("%s: signatures %q, want %q", label, names, want)
		}
	}
	waitLog(t, w.instance, "dkim=example.test/e,example.test/r")
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return n
}

// TestDKIMKeygen: the key is written private, never over another, and the
// record printed is one a DNS server loads, holding the key's public part.
func TestDKIMKeygen(t *testing.T) {
	in := setup(t, "")
	record := in.keygen("--domain", "example.test", "--selector", "s1")
	pem := filepath.Join(in.dir, "var", "dkim", "example.test", "s1.pem")
	fi, err := os.Stat(pem)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, %v; want mode 0600", fi, err)
	}
	ks, err := dkim.Load(filepath.Join(in.dir, "var", "dkim"))
	if err != nil || ks.Len() != 1 {
		t.Fatalf("keys: %v, %v", ks, err)
	}
	key := ks.All()[0]
	rr, err := dns.NewRR(record)
	if err != nil {
		t.Fatalf("%s: %v", record, err)
	}
	txt, ok := rr.(*dns.TXT)
	if !ok || txt.Hdr.Name != "s1._domainkey.example.test." || strings.Join(txt.Txt, "") != key.Record() ||
		key.Algorithm() != "rsa" || key.Bits() != dkim.DefaultRSABits {
		t.Errorf("record %s\nfor the %s key of %d bits %s", record, key.Algorithm(), key.Bits(), key.Record())
	}
	before := readFile(t, pem)
	code, out := in.runAs(binary, "", "dkim", "keygen", "--config", "facteur.toml", "--domain", "example.test", "--selector", "s1")
	if code == 0 || !strings.Contains(out, "exists") || readFile(t, pem) != before {
		t.Errorf("second keygen of s1: exit %d\n%s", code, out)
	}
	if code, out := in.runAs(binary, "", "dkim", "keygen", "--config", "facteur.toml", "--domain", "example.test",
		"--algorithm", "ed25519", "--bits", "2048"); code != 2 {
		t.Errorf("--bits with ed25519: exit %d\n%s", code, out)
	}

	in.keygen("--domain", "example.test", "--algorithm", "ed25519")
	code, out = in.runAs(binary, "", "check-config", "--config", "facteur.toml")
	for _, want := range []string{"signatures expire after 72h", "example.test selector s1: rsa, 2048 bits",
		"example.test selector " + dkim.DefaultSelector(time.Now(), "ed25519") + ": ed25519, 256 bits"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("check-config: exit %d, lacks %q\n%s", code, want, out)
		}
	}
	// A key that cannot be used is a problem naming its file, and a
	// start-up error.
	in.writeFile("var/dkim/example.test/broken.pem", "not a key")
	code, out = in.runAs(binary, "", "check-config", "--config", "facteur.toml")
	if code != 2 || !strings.Contains(out, "broken.pem") {
		t.Errorf("check-config with a broken key: exit %d\n%s", code, out)
	}
	code, out = in.runAs(binary, "", "serve", "--config", "facteur.toml")
	if code != 2 || !strings.Contains(out, "broken.pem") {
		t.Errorf("serve with a broken key: exit %d\n%s", code, out)
	}
}

// TestDKIMKeysReloadOnSIGHUP: a key added takes effect at the next
// SIGHUP; a broken one keeps the keys in force, and the log names it.
func TestDKIMKeysReloadOnSIGHUP(t *testing.T) {
	maddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	w := newRelayWorld(t, "")
	w.writeFile("facteur.toml", strings.Replace(readFile(t, w.dir+"/facteur.toml"), "[outbound]",
		fmt.Sprintf("[metrics]\nlisten = %q\n[outbound]", maddr), 1))
	w.twoMX()
	mx := w.mx("127.0.0.2", smtptest.MXOptions{})
	w.start()
	sendOne := func(n int) string {
		t.Helper()
		if err := send(w.relay, "alice@example.test", []string{"bob@remote.test"}, strings.Replace(message, "a@example.org", "alice@example.test", 1)); err != nil {
			t.Fatal(err)
		}
		mx.Wait(t, n, 20*time.Second)
		return string(mx.Messages()[n-1].Data)
	}
	if got := sendOne(1); strings.Contains(got, "DKIM-Signature") {
		t.Fatalf("signed with no key:\n%s", got)
	}
	w.keygen("--domain", "example.test", "--selector", "new", "--algorithm", "ed25519")
	w.cmd.Process.Signal(syscall.SIGHUP)
	waitLog(t, w.instance, `"reload: dkim keys"`)
	if got := sendOne(2); !signedBy(got, "example.test", "new") {
		t.Errorf("not signed with the key added:\n%s", got)
	}
	w.writeFile("var/dkim/example.test/broken.pem", "not a key")
	w.cmd.Process.Signal(syscall.SIGHUP)
	waitLog(t, w.instance, "reload: dkim keys kept")
	waitLog(t, w.instance, "broken.pem")
	if got := sendOne(3); !signedBy(got, "example.test", "new") {
		t.Errorf("the keys in force were dropped by a failed reload:\n%s", got)
	}
	if n := scrape(t, maddr, `facteur_dkim_signatures_total{domain="example.test",result="signed"}`); n != 2 {
		t.Errorf("facteur_dkim_signatures_total = %v, want 2", n)
	}
}

// signedBy reports whether msg has a DKIM-Signature field of domain and
// selector.
func signedBy(msg, domain, selector string) bool {
	sig := regexp.MustCompile(`(?m)^DKIM-Signature:[^\r\n]*(\r\n[ \t][^\r\n]*)*`).FindString(msg)
	return strings.Contains(sig, " d="+domain+";") && strings.Contains(sig, " s="+selector+";")
}

// TestDKIMKeygenAsRootGivesTheKeyToTheServer: root's keygen writes a key
// the server still reads after leaving root, at a SIGHUP.
func TestDKIMKeygenAsRootGivesTheKeyToTheServer(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (CI runs as root)")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody")
	}
	in := setup(t, "")
	for _, d := range []string{filepath.Dir(in.dir), in.dir} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	// keys_dir outside data_dir, which the server would give to its user.
	cfg := strings.Replace(readFile(t, filepath.Join(in.dir, "facteur.toml")), "run_as_root = true",
		"user = \"nobody\"\n[dkim]\nkeys_dir = \"keys\"", 1)
	in.writeFile("facteur.toml", cfg)
	in.start()
	in.keygen("--domain", "example.test", "--selector", "s", "--algorithm", "ed25519")
	for _, p := range []string{"keys", "keys/example.test", "keys/example.test/s.pem"} {
		fi, err := os.Stat(filepath.Join(in.dir, p))
		if err != nil {
			t.Fatal(err)
		}
		if uid := fi.Sys().(*syscall.Stat_t).Uid; strconv.Itoa(int(uid)) != nobody.Uid {
			t.Errorf("%s owned by uid %d, want nobody's %s", p, uid, nobody.Uid)
		}
	}
	in.cmd.Process.Signal(syscall.SIGHUP)
	waitLog(t, in, `"reload: dkim keys" dir=`)
	if !strings.Contains(in.out.String(), "keys=example.test/s") {
		t.Errorf("the server, as nobody, did not read the key:\n%s", in.out.String())
	}
}
