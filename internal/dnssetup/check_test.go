package dnssetup

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"facteur/internal/config"
	"facteur/internal/dkim"
	"facteur/internal/resolver"
	"facteur/internal/smtptest"
	"facteur/internal/tlsconf"
	"facteur/internal/zone"
)

// rsaKey is made once: 2048 bits, so that its record needs two strings.
var rsaKey = sync.OnceValue(func() crypto.Signer {
	k, err := dkim.Generate("rsa", 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// newSetup loads a configuration whose [listen] section is listen, with an
// RSA and an Ed25519 key for example.test when withKeys.
func newSetup(t *testing.T, listen string, withKeys bool) (*Setup, *config.Config) {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "facteur.toml")
	cfg := "hostname = \"mx.example.test\"\ndomains = [\"example.test\", \"sub.example.test\", \"localhost\"]\n[listen]\n" + listen
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(file, config.Switches{})
	if err != nil {
		t.Fatal(err)
	}
	if withKeys {
		if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
			t.Fatal(err)
		}
		ed, err := dkim.Generate("ed25519", 0)
		if err != nil {
			t.Fatal(err)
		}
		for sel, k := range map[string]crypto.Signer{"r": rsaKey(), "e": ed} {
			if _, err := dkim.Write(c.DKIM.KeysDir, "example.test", sel, k, -1, -1); err != nil {
				t.Fatal(err)
			}
		}
	}
	keys, err := dkim.Load(c.DKIM.KeysDir)
	if err != nil {
		t.Fatal(err)
	}
	// The self-signed certificate of a first start.
	if _, err := tlsconf.Open("", "", c.DataDir, c.Hostname); err != nil {
		t.Fatal(err)
	}
	cert, err := tlsconf.Leaf("", "", c.DataDir)
	if err != nil || cert == nil {
		t.Fatalf("Leaf = %v, %v", cert, err)
	}
	s := New(c, keys, cert)
	s.RootCAs = stsCA(t).Pool()
	return s, c
}

// publicListen has the addresses an operator with a public host writes.
const publicListen = "smtp = [\"192.0.2.25:25\"]\nsmtps = [\"[2001:db8::25]:465\", \"127.0.0.1:4465\"]\n"

// publish loads every record of the zone-file text into a new test DNS
// server, as a DNS server loading it would read it, and answers as a
// validating resolver does for a zone signed with DNSSEC.
func publish(t *testing.T, text string) *smtptest.DNSServer {
	t.Helper()
	srv := smtptest.NewDNS(t)
	srv.SecureAll(true)
	zp := dns.NewZoneParser(strings.NewReader(text), "", "")
	n := 0
	var sts []string // domains announcing an MTA-STS policy
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		srv.RR(rr.String())
		n++
		if d, ok := strings.CutPrefix(rr.Header().Name, "_mta-sts."); ok {
			sts = append(sts, strings.TrimSuffix(d, "."))
		}
	}
	if err := zp.Err(); err != nil {
		t.Fatalf("records do not parse as a zone: %v\n%s", err, text)
	}
	if n == 0 {
		t.Fatalf("no record in:\n%s", text)
	}
	if len(sts) > 0 {
		serveSTS(t, srv, stsEnforce, sts...)
	}
	return srv
}

func records(t *testing.T, s *Setup, domains []string) string {
	t.Helper()
	var b strings.Builder
	if err := Write(&b, s.Records(domains)); err != nil {
		t.Fatal(err)
	}
	// Every line is a record, a comment or blank: nothing a zone would
	// take for something else.
	for _, l := range strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n") {
		if l == "" || strings.HasPrefix(l, "; ") {
			continue
		}
		if _, err := dns.NewRR(l); err != nil {
			t.Errorf("line %q: %v", l, err)
		}
	}
	return b.String()
}

// check runs Check against srv and returns the results by subject.
func check(t *testing.T, s *Setup, srv *smtptest.DNSServer, domains []string) map[string]Result {
	t.Helper()
	r, err := resolver.New(srv.Addr(), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Result{}
	s.Check(context.Background(), r, domains, func(res Result) {
		if _, dup := got[res.Subject]; dup {
			t.Errorf("two results for %s", res.Subject)
		}
		got[res.Subject] = res
	})
	return got
}

func TestPublishedRecordsPassCheck(t *testing.T) {
	s, cfg := newSetup(t, publicListen, true)
	domains, err := Domains(cfg, nil)
	if err != nil || strings.Join(domains, " ") != "example.test sub.example.test" {
		t.Fatalf("Domains = %q, %v", domains, err)
	}
	text := records(t, s, domains)
	for _, want := range []string{
		"mx.example.test. IN A 192.0.2.25\n",
		"mx.example.test. IN AAAA 2001:db8::25\n",
		"25.2.0.192.in-addr.arpa. IN PTR mx.example.test.\n",
		"example.test. IN MX 10 mx.example.test.\n",
		`example.test. IN TXT "v=spf1 ip4:192.0.2.25 ip6:2001:db8::25 -all"` + "\n",
		zone.TXT("r._domainkey.example.test", s.Keys.For("example.test")[1].Record()) + "\n",
		`_dmarc.example.test. IN TXT "v=DMARC1; p=reject; rua=mailto:postmaster@example.test"` + "\n",
		"p=quarantine",
		`_dmarc.sub.example.test. IN TXT "v=DMARC1; p=reject; rua=mailto:postmaster@sub.example.test"` + "\n",
		`_smtp._tls.example.test. IN TXT "v=TLSRPTv1; rua=mailto:postmaster@example.test"` + "\n",
		`_smtp._tls.sub.example.test. IN TXT "v=TLSRPTv1; rua=mailto:postmaster@sub.example.test"` + "\n",
		"; DKIM: mail from sub.example.test is signed with the key at e._domainkey.example.test, above\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("records lack %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "127.0.0.1") {
		t.Errorf("records publish the loopback listener:\n%s", text)
	}

	got := check(t, s, publish(t, text), domains)
	for _, subject := range []string{
		"mx.example.test A/AAAA", "192.0.2.25 PTR", "2001:db8::25 PTR",
		"example.test MX", "example.test SPF", "example.test DKIM e._domainkey.example.test",
		"example.test DKIM r._domainkey.example.test", "example.test DMARC", "example.test DMARC alignment",
		"sub.example.test MX", "sub.example.test SPF", "sub.example.test DKIM e._domainkey.example.test",
		"sub.example.test DMARC", "sub.example.test DMARC alignment",
		"example.test TLSRPT", "sub.example.test TLSRPT",
	} {
		if got[subject].Status != OK || got[subject].Subject == "" {
			t.Errorf("%s: %v, want ok", subject, got[subject])
		}
	}
	for _, r := range got {
		if r.Status != OK {
			t.Errorf("not ok: %v", r)
		}
	}
}

// TestCheckFindsBrokenRecords breaks one part of a correct zone at a time:
// the check of that part fails, and says how to fix it.
func TestCheckFindsBrokenRecords(t *testing.T) {
	s, _ := newSetup(t, publicListen, true)
	domains := []string{"example.test"}
	text := records(t, s, domains)
	other, err := dkim.Generate("ed25519", 0)
	if err != nil {
		t.Fatal(err)
	}
	otherKey := &dkim.Key{Domain: "example.test", Selector: "e", Signer: other}
	for _, tc := range []struct {
		name  string
		edit  func(*smtptest.DNSServer)
		fails []string // subjects that must fail
		says  string   // in the first one's text
	}{
		{"missing DKIM record", func(d *smtptest.DNSServer) { d.Remove("e._domainkey.example.test", dns.TypeTXT) },
			[]string{"example.test DKIM e._domainkey.example.test"}, `fix: publish e._domainkey.example.test. IN TXT "v=DKIM1; k=ed25519; p=`},
		{"wrong DKIM key", func(d *smtptest.DNSServer) {
			d.Remove("e._domainkey.example.test", dns.TypeTXT)
			d.RR(zone.TXT(otherKey.Name(), otherKey.Record()))
		}, []string{"example.test DKIM e._domainkey.example.test"}, "p= is another key than the one in"},
		{"DKIM algorithm", func(d *smtptest.DNSServer) {
			d.Remove("e._domainkey.example.test", dns.TypeTXT)
			d.TXT("e._domainkey.example.test", strings.Replace(otherKey.Record(), "k=ed25519", "k=rsa", 1))
		}, []string{"example.test DKIM e._domainkey.example.test"}, "k=rsa, but the key is ed25519"},
		{"revoked DKIM key", func(d *smtptest.DNSServer) {
			d.Remove("r._domainkey.example.test", dns.TypeTXT)
			d.TXT("r._domainkey.example.test", "v=DKIM1; k=rsa; p=")
		}, []string{"example.test DKIM r._domainkey.example.test"}, "revokes"},
		{"SPF not authorising the address", func(d *smtptest.DNSServer) {
			d.Remove("example.test", dns.TypeTXT)
			d.TXT("example.test", "v=spf1 ip4:198.51.100.1 ip6:2001:db8::25 -all")
		}, []string{"example.test SPF"}, `"v=spf1 ip4:198.51.100.1 ip6:2001:db8::25 -all" gives fail for 192.0.2.25; fix: authorise 192.0.2.25, 2001:db8::25 in it`},
		{"SPF that does not parse", func(d *smtptest.DNSServer) {
			d.Remove("example.test", dns.TypeTXT)
			d.TXT("example.test", "v=spf1 ipv4:192.0.2.25 -all")
		}, []string{"example.test SPF"}, "gives permerror for 192.0.2.25 (unknown field), permerror for 2001:db8::25 (unknown field); fix: correct it, as"},
		{"no SPF", func(d *smtptest.DNSServer) { d.Remove("example.test", dns.TypeTXT) },
			[]string{"example.test SPF"}, `no SPF record; fix: publish example.test. IN TXT "v=spf1 ip4:192.0.2.25 ip6:2001:db8::25 -all"`},
		{"two SPF records", func(d *smtptest.DNSServer) { d.TXT("example.test", "v=spf1 mx -all") },
			[]string{"example.test SPF"}, "2 SPF records"},
		{"no DMARC", func(d *smtptest.DNSServer) { d.Remove("_dmarc.example.test", dns.TypeTXT) },
			[]string{"example.test DMARC"}, `fix: publish _dmarc.example.test. IN TXT "v=DMARC1; p=reject; rua=mailto:postmaster@example.test"`},
		{"DMARC that does not parse", func(d *smtptest.DNSServer) {
			d.Remove("_dmarc.example.test", dns.TypeTXT)
			d.TXT("_dmarc.example.test", "v=DMARC1; p=sometimes")
		}, []string{"example.test DMARC"}, "does not parse"},
		{"two TLSRPT records", func(d *smtptest.DNSServer) {
			d.TXT("_smtp._tls.example.test", "v=TLSRPTv1; rua=mailto:tls@example.test")
		},
			[]string{"example.test TLSRPT"}, `2 TLSRPT records, where one is allowed, so senders send no report; fix: publish only _smtp._tls.example.test. IN TXT "v=TLSRPTv1; rua=mailto:postmaster@example.test"`},
		{"TLSRPT without an address", func(d *smtptest.DNSServer) {
			d.Remove("_smtp._tls.example.test", dns.TypeTXT)
			d.TXT("_smtp._tls.example.test", "v=TLSRPTv1; rua=postmaster@example.test")
		}, []string{"example.test TLSRPT"}, `rua "postmaster@example.test" is no URI`},
		{"no PTR", func(d *smtptest.DNSServer) { d.Remove("25.2.0.192.in-addr.arpa", dns.TypePTR) },
			[]string{"192.0.2.25 PTR"}, "no PTR record"},
		{"PTR naming another host", func(d *smtptest.DNSServer) {
			d.Remove("25.2.0.192.in-addr.arpa", dns.TypePTR)
			d.PTR("192.0.2.25", "host-25.provider.test")
		}, []string{"192.0.2.25 PTR"}, "host-25.provider.test., not mx.example.test"},
		{"PTR not confirmed", func(d *smtptest.DNSServer) { d.Remove("mx.example.test", dns.TypeA) },
			[]string{"mx.example.test A/AAAA", "192.0.2.25 PTR"}, "2001:db8::25, but facteur listens on 192.0.2.25; fix: publish mx.example.test. IN A 192.0.2.25"},
		{"TLSA of another key", func(d *smtptest.DNSServer) {
			d.Remove("_25._tcp.mx.example.test", dns.TypeTLSA)
			d.RR("_25._tcp.mx.example.test. IN TLSA 3 1 1 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff")
		}, []string{"_25._tcp.mx.example.test TLSA"}, "matches not the certificate facteur serves, and senders using DANE will not deliver to it; fix: publish _25._tcp.mx.example.test. IN TLSA 3 1 1 "},
		{"MX elsewhere", func(d *smtptest.DNSServer) {
			d.Remove("example.test", dns.TypeMX)
			d.MX("example.test", 10, "mail.provider.test")
		}, []string{"example.test MX"}, "10 mail.provider.test., not mx.example.test"},
		{"nothing aligned", func(d *smtptest.DNSServer) {
			d.Remove("example.test", dns.TypeTXT)
			d.Remove("e._domainkey.example.test", dns.TypeTXT)
			d.Remove("r._domainkey.example.test", dns.TypeTXT)
		}, []string{"example.test DMARC alignment"}, "neither DKIM nor SPF passes for example.test, so receivers apply p=reject"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := publish(t, text)
			tc.edit(srv)
			got := check(t, s, srv, domains)
			for _, subject := range tc.fails {
				if got[subject].Status != Fail || got[subject].Subject == "" {
					t.Errorf("%s: %v, want FAIL", subject, got[subject])
				}
			}
			if r := got[tc.fails[0]]; !strings.Contains(r.Text, tc.says) {
				t.Errorf("%v\ndoes not say %q", r, tc.says)
			}
		})
	}
}

// TestCheckWarns covers what works but should be better: a careful DMARC
// policy, a domain without a key, a host whose addresses the listeners do
// not give.
func TestCheckWarns(t *testing.T) {
	for _, tc := range []struct {
		name, listen string
		keys         bool
		edit         func(*smtptest.DNSServer)
		warn         string
		ok           []string
	}{
		{"p=none", publicListen, true, func(d *smtptest.DNSServer) {
			d.Remove("_dmarc.example.test", dns.TypeTXT)
			d.TXT("_dmarc.example.test", "v=DMARC1; p=none")
		}, "example.test DMARC", []string{"example.test DMARC alignment"}},
		{"no key", publicListen, false, func(*smtptest.DNSServer) {},
			"example.test DKIM", []string{"example.test DMARC alignment", "example.test SPF"}},
		{"wildcard listener", "smtp = [\"0.0.0.0:25\"]\nsmtps = []\n", true, func(d *smtptest.DNSServer) {
			d.A("mx.example.test", "192.0.2.25")
			d.PTR("192.0.2.25", "mx.example.test")
		}, "mx.example.test A/AAAA", []string{"192.0.2.25 PTR", "example.test SPF"}},
		{"listener behind NAT", "smtp = [\"10.0.0.5:25\"]\nsmtps = []\n", true, func(d *smtptest.DNSServer) {
			d.A("mx.example.test", "192.0.2.25")
			d.PTR("192.0.2.25", "mx.example.test")
		}, "mx.example.test A/AAAA", []string{"192.0.2.25 PTR", "example.test SPF"}},
		{"address where facteur does not listen", publicListen, true, func(d *smtptest.DNSServer) {
			d.A("mx.example.test", "198.51.100.7")
		}, "mx.example.test A/AAAA", []string{"192.0.2.25 PTR", "example.test SPF"}},
		{"TLSA in an unsigned zone", publicListen, true, func(d *smtptest.DNSServer) {
			d.Secure("_25._tcp.mx.example.test", false)
		}, "_25._tcp.mx.example.test TLSA", []string{"example.test MX"}},
		{"no TLSRPT", publicListen, true, func(d *smtptest.DNSServer) {
			d.Remove("_smtp._tls.example.test", dns.TypeTXT)
		}, "example.test TLSRPT", []string{"example.test DMARC"}},
		{"no TLSA", publicListen, true, func(d *smtptest.DNSServer) {
			d.Remove("_25._tcp.mx.example.test", dns.TypeTLSA)
		}, "_25._tcp.mx.example.test TLSA", []string{"example.test MX"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newSetup(t, tc.listen, tc.keys)
			srv := publish(t, records(t, s, []string{"example.test"}))
			tc.edit(srv)
			got := check(t, s, srv, []string{"example.test"})
			if got[tc.warn].Status != Warn || got[tc.warn].Subject == "" {
				t.Errorf("%s: %v, want warn", tc.warn, got[tc.warn])
			}
			for _, subject := range tc.ok {
				if got[subject].Status != OK || got[subject].Subject == "" {
					t.Errorf("%s: %v, want ok", subject, got[subject])
				}
			}
			for _, r := range got {
				if r.Status == Fail {
					t.Errorf("%v", r)
				}
			}
		})
	}
}

// TestCheckLoopbackListener: a listener's specific address is checked as
// such whatever it is, once DNS names it, which is how the tests' facteur
// on 127.0.0.1 is checked; the records do not publish it.
func TestCheckLoopbackListener(t *testing.T) {
	s, _ := newSetup(t, "smtp = [\"127.0.0.1:2525\"]\nsmtps = []\n", true)
	text := records(t, s, []string{"example.test"})
	for _, want := range []string{
		"; mx.example.test. IN A <this host's public IPv4 address>",
		"facteur listens on 127.0.0.1, which the Internet cannot reach",
		"must make their PTR records name mx.example.test",
		`example.test. IN TXT "v=spf1 mx -all"`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("records lack %q:\n%s", want, text)
		}
	}
	srv := publish(t, text)
	srv.A("mx.example.test", "127.0.0.1")
	srv.PTR("127.0.0.1", "mx.example.test")
	got := check(t, s, srv, []string{"example.test"})
	for _, r := range got {
		if r.Status != OK {
			t.Errorf("not ok: %v", r)
		}
	}
	if !strings.Contains(got["example.test SPF"].Text, `"v=spf1 mx -all" passes 127.0.0.1`) {
		t.Errorf("%v", got["example.test SPF"])
	}
}

func TestCheckLookupFailures(t *testing.T) {
	s, _ := newSetup(t, publicListen, true)
	srv := publish(t, records(t, s, []string{"example.test"}))
	srv.ServFail("_dmarc.example.test")
	srv.ServFail("e._domainkey.example.test")
	got := check(t, s, srv, []string{"example.test"})
	for _, subject := range []string{"example.test DMARC", "example.test DKIM e._domainkey.example.test"} {
		if r := got[subject]; r.Status != Fail || !strings.Contains(r.Text, "lookup failed") {
			t.Errorf("%s: %v, want a failed lookup", subject, r)
		}
	}
}

func TestMatchKey(t *testing.T) {
	rk := &dkim.Key{Domain: "example.test", Selector: "r", File: "r.pem", Signer: rsaKey()}
	pkcs1 := base64.StdEncoding.EncodeToString(x509.MarshalPKCS1PublicKey(rsaKey().Public().(*rsa.PublicKey)))
	spaced := strings.Replace(rk.Record(), "p=", "p= ", 1)
	spaced = spaced[:len(spaced)-20] + " \t" + spaced[len(spaced)-20:]
	for _, rec := range []string{rk.Record(), "p=" + pkcs1, spaced, "k=rsa;p=" + pkcs1 + ";"} {
		if err := matchKey(rk, rec); err != nil {
			t.Errorf("%q: %v", rec, err)
		}
	}
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	ek := &dkim.Key{Domain: "example.test", Selector: "e", File: "e.pem", Signer: priv}
	for rec, want := range map[string]string{
		"v=DKIM2; k=ed25519; p=x":  "want DKIM1",
		"v=DKIM1; k=ed25519":       "no p= tag",
		"v=DKIM1; k=ed25519; p=%%": "not base64",
		"v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(pub):     "another key",
		"v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(pub[:8]): "8 bytes",
		rk.Record(): "k=rsa, but the key is ed25519",
	} {
		if err := matchKey(ek, rec); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", rec, err, want)
		}
	}
	if err := matchKey(ek, ek.Record()); err != nil {
		t.Errorf("own record: %v", err)
	}
}

func TestDomains(t *testing.T) {
	_, cfg := newSetup(t, publicListen, false)
	got, err := Domains(cfg, []string{"Example.ORG.", "b.example.test"})
	if err != nil || strings.Join(got, " ") != "example.org b.example.test" {
		t.Errorf("Domains = %q, %v", got, err)
	}
	for _, bad := range []string{"example", "a b.example", "-x..example"} {
		if _, err := Domains(cfg, []string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	cfg.Domains = []string{"localhost"}
	if got, err := Domains(cfg, nil); err == nil {
		t.Errorf("only localhost: %q", got)
	}
}

// TestCheckBareHostname: the default host name is the machine's, often not
// a public name, and the check says where to set one.
func TestCheckBareHostname(t *testing.T) {
	s, _ := newSetup(t, publicListen, false)
	s.Hostname = "myhost"
	got := check(t, s, smtptest.NewDNS(t), []string{"example.test"})
	if r := got["myhost A/AAAA"]; r.Status != Fail || !strings.Contains(r.Text, `fix: set hostname = "mx.example.org"`) {
		t.Errorf("%v", r)
	}
}
