package dnssetup

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/miekg/dns"

	"facteur/internal/mtasts"
	"facteur/internal/smtptest"
)

// stsEnforce is the policy of mx.example.test, the tests' host, in enforce mode.
var stsEnforce = (&Setup{Hostname: "mx.example.test"}).stsPolicy(mtasts.Enforce)

var (
	stsOnce sync.Once
	stsCert *smtptest.CA
	stsIP   atomic.Int32
)

// stsCA signed the certificate of the tests' MTA-STS policy servers.
func stsCA(t *testing.T) *smtptest.CA {
	stsOnce.Do(func() { stsCert = smtptest.NewCA(t, "mta-sts.example.test", "mta-sts.sub.example.test") })
	return stsCert
}

// serveSTS serves policy for domains on a loopback address of its own,
// which srv gives to mta-sts.<domain>.
func serveSTS(t *testing.T, srv *smtptest.DNSServer, policy string, domains ...string) *smtptest.STSServer {
	t.Helper()
	ip := fmt.Sprintf("127.83.1.%d", stsIP.Add(1)%250+1)
	sts := smtptest.NewSTSServer(t, ip, stsCA(t).ServerTLS(), policy)
	for _, d := range domains {
		srv.Remove("mta-sts."+d, dns.TypeA)
		srv.A("mta-sts."+d, ip)
	}
	return sts
}

func TestSTSRecords(t *testing.T) {
	s, _ := newSetup(t, publicListen, false)
	text := records(t, s, []string{"example.test"})
	testing := s.stsPolicy(mtasts.Testing)
	for _, want := range []string{
		`_mta-sts.example.test. IN TXT "v=STSv1; id=` + stsID(testing) + `"` + "\n",
		"; MTA-STS policy: serve this file as text/plain at https://mta-sts.example.test/.well-known/mta-sts.txt",
		"change mode: testing to mode: enforce, and the id above to id=" + stsID(stsEnforce) + ":\n" +
			";     version: STSv1\n;     mode: testing\n;     mx: mx.example.test\n;     max_age: 604800\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("records lack %q:\n%s", want, text)
		}
	}
	if _, err := mtasts.Parse(testing); err != nil || stsID(testing) == stsID(stsEnforce) {
		t.Errorf("the testing policy: %v; ids %s and %s", err, stsID(testing), stsID(stsEnforce))
	}
}

// TestCheckMTASTS: the policy is fetched as senders do, and checked
// against this host; what is wrong says how to fix it.
func TestCheckMTASTS(t *testing.T) {
	s, _ := newSetup(t, publicListen, true)
	text := records(t, s, []string{"example.test"})
	const subject = "example.test MTA-STS"
	for _, tc := range []struct {
		name   string
		edit   func(*smtptest.DNSServer, *smtptest.STSServer)
		status Status
		says   string
	}{
		{"enforce", func(*smtptest.DNSServer, *smtptest.STSServer) {}, OK,
			"id=" + stsID(s.stsPolicy(mtasts.Testing)) + ", mode: enforce, mx: mx.example.test, max_age: 604800"},
		{"testing", func(_ *smtptest.DNSServer, sts *smtptest.STSServer) { sts.Policy(s.stsPolicy(mtasts.Testing)) }, Warn,
			"senders only report failures"},
		{"no record", func(d *smtptest.DNSServer, _ *smtptest.STSServer) { d.Remove("_mta-sts.example.test", dns.TypeTXT) }, Warn,
			"no record at _mta-sts.example.test"},
		{"two records", func(d *smtptest.DNSServer, _ *smtptest.STSServer) { d.TXT("_mta-sts.example.test", "v=STSv1; id=2") }, Fail,
			"is not one v=STSv1 record with an id"},
		{"no policy server", func(d *smtptest.DNSServer, _ *smtptest.STSServer) { d.Remove("mta-sts.example.test", dns.TypeA) }, Fail,
			"fix: serve the policy file 'facteur dns records' prints at https://mta-sts.example.test/.well-known/mta-sts.txt"},
		{"not text/plain", func(_ *smtptest.DNSServer, sts *smtptest.STSServer) { sts.ContentType("text/html") }, Fail,
			`Content-Type "text/html", not text/plain`},
		{"server error", func(_ *smtptest.DNSServer, sts *smtptest.STSServer) { sts.Status(http.StatusNotFound) }, Fail,
			"server answered 404 Not Found"},
		{"invalid policy", func(_ *smtptest.DNSServer, sts *smtptest.STSServer) { sts.Policy("version: STSv1\nmode: enforce\n") }, Fail,
			"invalid MTA-STS policy"},
		{"another host", func(_ *smtptest.DNSServer, sts *smtptest.STSServer) {
			sts.Policy(strings.Replace(stsEnforce, "mx: mx.example.test", "mx: *.provider.test", 1))
		}, Fail, "which does not name mx.example.test"},
		{"withdrawn", func(_ *smtptest.DNSServer, sts *smtptest.STSServer) {
			sts.Policy("version: STSv1\nmode: none\nmax_age: 1\n")
		}, Warn,
			"the policy is withdrawn"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := publish(t, text)
			sts := serveSTS(t, srv, stsEnforce, "example.test")
			tc.edit(srv, sts)
			r := check(t, s, srv, []string{"example.test"})[subject]
			if r.Status != tc.status || !strings.Contains(r.Text, tc.says) {
				t.Errorf("%v\nwant %v, saying %q", r, tc.status, tc.says)
			}
		})
	}
}
