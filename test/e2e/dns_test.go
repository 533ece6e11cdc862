package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"facteur/internal/dkim"
	"facteur/internal/smtptest"
	"facteur/internal/tlsconf"
)

// TestDNSRecordsThenCheck publishes what `facteur dns records` prints, as an
// operator would, and `facteur dns check` then finds everything in order;
// breaking a record makes that check FAIL and the exit status 1.
func TestDNSRecordsThenCheck(t *testing.T) {
	srv := smtptest.NewDNS(t)
	srv.SecureAll(true) // the zone is signed with DNSSEC
	in := setup(t, "")
	// The host of a real operator: listeners on its public addresses.
	in.writeFile("dns.toml", `hostname = "mx.example.test"
domains = ["example.test", "localhost"]
data_dir = "var"
dns = "`+srv.Addr()+`"
[listen]
smtp = ["192.0.2.25:25"]
smtps = ["[2001:db8::25]:465"]
`)
	keysDir := filepath.Join(in.dir, "var", "dkim")
	if err := os.MkdirAll(keysDir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, alg := range []string{"rsa", "ed25519"} {
		k, err := dkim.Generate(alg, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := dkim.Write(keysDir, "example.test", alg[:1], k, -1, -1); err != nil {
			t.Fatal(err)
		}
	}

	// The self-signed certificate of the first start, for the TLSA record.
	if _, err := tlsconf.Open("", "", filepath.Join(in.dir, "var"), "mx.example.test"); err != nil {
		t.Fatal(err)
	}

	code, out := in.runAs(binary, "", "dns", "records", "--config", "dns.toml")
	if code != 0 {
		t.Fatalf("dns records: exit %d\n%s", code, out)
	}
	zp := dns.NewZoneParser(strings.NewReader(out), "", "")
	types := map[string]int{}
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		srv.RR(rr.String())
		types[dns.TypeToString[rr.Header().Rrtype]]++
	}
	if err := zp.Err(); err != nil {
		t.Fatalf("dns records is not a zone file: %v\n%s", err, out)
	}
	// A, AAAA, 2 PTR, TLSA, MX, SPF + 2 DKIM + DMARC + TLSRPT + MTA-STS.
	if types["A"] != 1 || types["AAAA"] != 1 || types["PTR"] != 2 || types["TLSA"] != 1 || types["MX"] != 1 || types["TXT"] != 6 {
		t.Fatalf("records %v:\n%s", types, out)
	}
	// The MTA-STS policy file, served as the records' comment says, by a
	// web server whose certificate senders trust.
	records := out
	var policy strings.Builder
	for _, l := range strings.Split(records, "\n") {
		if line, ok := strings.CutPrefix(l, ";     "); ok {
			policy.WriteString(line + "\n")
		}
	}
	ca := smtptest.NewCA(t, "mta-sts.example.test")
	in.writeFile("roots.pem", string(ca.CAPEM))
	t.Setenv("SSL_CERT_FILE", filepath.Join(in.dir, "roots.pem"))
	sts := smtptest.NewSTSServer(t, "127.84.1.1", ca.ServerTLS(), policy.String())
	srv.A("mta-sts.example.test", "127.84.1.1")

	code, out = in.runAs(binary, "", "dns", "check", "--config", "dns.toml")
	if code != 0 {
		t.Fatalf("dns check of the published records: exit %d\n%s", code, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 12 { // host, 2 PTR, TLSA, MX, SPF, 2 DKIM, DMARC, alignment, TLSRPT, MTA-STS
		t.Errorf("%d checks, want 12:\n%s", len(lines), out)
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "ok    ") && !strings.HasPrefix(l, "warn  example.test MTA-STS: ") {
			t.Errorf("not ok: %s", l)
		}
	}
	if !strings.Contains(out, "mode: testing, mx: mx.example.test, max_age: 604800: senders only report failures") {
		t.Errorf("the testing policy is not what the check says:\n%s", out)
	}
	// Past testing, as the records say: mode: enforce, and the id they give.
	_, id, _ := strings.Cut(records, "and the id above to id=")
	id, _, _ = strings.Cut(id, ":")
	sts.Policy(strings.Replace(policy.String(), "mode: testing", "mode: enforce", 1))
	srv.Remove("_mta-sts.example.test", dns.TypeTXT)
	srv.TXT("_mta-sts.example.test", "v=STSv1; id="+id)
	code, out = in.runAs(binary, "", "dns", "check", "--config", "dns.toml")
	if code != 0 || strings.Count(out, "ok    ") != 12 || !strings.Contains(out, "ok    example.test MTA-STS: id="+id+", mode: enforce") {
		t.Errorf("dns check after the switch to enforce: exit %d\n%s", code, out)
	}

	srv.Remove("e._domainkey.example.test", dns.TypeTXT)
	srv.Remove("_dmarc.example.test", dns.TypeTXT)
	srv.Remove("_smtp._tls.example.test", dns.TypeTXT)
	srv.Remove("mta-sts.example.test", dns.TypeA)
	code, out = in.runAs(binary, "", "dns", "check", "--config", "dns.toml", "example.test")
	if code != 1 {
		t.Errorf("dns check without a DKIM and a DMARC record: exit %d, want 1\n%s", code, out)
	}
	for _, want := range []string{
		"\nFAIL  example.test DKIM e._domainkey.example.test: no record for the key in ",
		"\nok    example.test DKIM r._domainkey.example.test: the 2048-bit RSA key of ",
		"\nFAIL  example.test DMARC: no record at _dmarc.example.test; fix: publish _dmarc.example.test. IN TXT",
		"\nok    example.test SPF: \"v=spf1 ip4:192.0.2.25 ip6:2001:db8::25 -all\" passes 192.0.2.25, 2001:db8::25\n",
		"\nwarn  example.test TLSRPT: no record at _smtp._tls.example.test: senders do not report when they cannot deliver " +
			"to example.test securely; to hear of it, publish _smtp._tls.example.test. IN TXT \"v=TLSRPTv1; rua=mailto:postmaster@example.test\"",
		"\nFAIL  example.test MTA-STS: id=" + id + ", but fetch https://mta-sts.example.test/.well-known/mta-sts.txt: ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// TestDNSCheckLoopbackListener checks the test instance's own setup, listeners
// on 127.0.0.1: DNS naming that address is all it takes.
func TestDNSCheckLoopbackListener(t *testing.T) {
	srv := smtptest.NewDNS(t)
	in := setup(t, `dns = "`+srv.Addr()+`"`)
	srv.MX("example.test", 10, "mx.example.test")
	srv.A("mx.example.test", "127.0.0.1")
	srv.TXT("example.test", "v=spf1 mx -all")
	srv.TXT("_dmarc.example.test", "v=DMARC1; p=quarantine")
	code, out := in.runAs(binary, "", "dns", "check", "--config", "facteur.toml")
	if code != 1 || !strings.Contains(out, "FAIL  127.0.0.1 PTR: no PTR record") {
		t.Errorf("without PTR: exit %d\n%s", code, out)
	}
	srv.PTR("127.0.0.1", "mx.example.test")
	code, out = in.runAs(binary, "", "dns", "check", "--config", "facteur.toml")
	if code != 0 || !strings.Contains(out, "ok    127.0.0.1 PTR: mx.example.test, which resolves back to 127.0.0.1") ||
		!strings.Contains(out, "warn  example.test DKIM: no key signs mail from example.test") {
		t.Errorf("exit %d\n%s", code, out)
	}
}

func TestDNSUsageErrors(t *testing.T) {
	in := setup(t, "")
	for _, args := range [][]string{
		{"dns"},
		{"dns", "publish"},
		{"dns", "records", "--config", "facteur.toml", "not a domain"},
		{"dns", "check", "--config", "missing.toml"},
	} {
		if code, out := in.runAs(binary, "", args...); code != 2 {
			t.Errorf("%q: exit %d, want 2\n%s", args, code, out)
		}
	}
	if err := os.MkdirAll(filepath.Join(in.dir, "var/dkim/example.test"), 0o700); err != nil {
		t.Fatal(err)
	}
	in.writeFile("var/dkim/example.test/bad.pem", "garbage")
	if code, out := in.runAs(binary, "", "dns", "records", "--config", "facteur.toml"); code != 2 || !strings.Contains(out, "bad.pem") {
		t.Errorf("bad key: exit %d\n%s", code, out)
	}
}
