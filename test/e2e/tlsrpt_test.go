package e2e

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"facteur/internal/smtptest"
)

// rfc8460Report is the report as RFC 8460 4.4 names its members, read
// independently of facteur's own types.
type rfc8460Report struct {
	OrganizationName string `json:"organization-name"`
	DateRange        struct {
		Start time.Time `json:"start-datetime"`
		End   time.Time `json:"end-datetime"`
	} `json:"date-range"`
	ContactInfo string `json:"contact-info"`
	ReportID    string `json:"report-id"`
	Policies    []struct {
		Policy struct {
			Type   string   `json:"policy-type"`
			Domain string   `json:"policy-domain"`
			MXHost []string `json:"mx-host"`
		} `json:"policy"`
		Summary struct {
			Successful *int `json:"total-successful-session-count"`
			Failed     *int `json:"total-failure-session-count"`
		} `json:"summary"`
		FailureDetails []struct {
			ResultType  string `json:"result-type"`
			SendingIP   string `json:"sending-mta-ip"`
			ReceivingMX string `json:"receiving-mx-hostname"`
			ReceivingIP string `json:"receiving-ip"`
			Count       int    `json:"failed-session-count"`
			Reason      string `json:"failure-reason-code"`
		} `json:"failure-details"`
	} `json:"policies"`
}

// TestTLSReportsSentAfterTheDay: with tls_reports on, sessions with the MX
// hosts of three domains (TLS verified, no STARTTLS, a certificate for
// another name) are counted, survive a restart, and once the day is over
// (the daemon's clock moved a day ahead by its test-only variable) each
// domain's rua address receives an RFC 8460 report with those counts,
// DKIM-signed with the key of our domain. Delivering the reports counts
// nothing itself.
func TestTLSReportsSentAfterTheDay(t *testing.T) {
	dns := smtptest.NewDNS(t)
	verify := dkimpy(t, dns.Addr())
	port := smtptest.FreePortOn(t, "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5")
	// verify: certificates are checked against SSL_CERT_FILE, the two CAs.
	in := setup(t, fmt.Sprintf("dns = %q\n[outbound]\nport = %d\nconnect_timeout = \"2s\"\ntls = \"verify\"\n"+
		"min_backoff = \"1h\"\nmax_backoff = \"2h\"\ntls_reports = true\n", dns.Addr(), port))
	w := &relayWorld{instance: in, dns: dns, port: port}
	trusted := smtptest.NewCA(t, "mx.good.test", "mx.reports.test")
	other := smtptest.NewCA(t, "mx.elsewhere.test")
	in.writeFile("cas.pem", string(trusted.CAPEM)+string(other.CAPEM))
	t.Setenv("SSL_CERT_FILE", filepath.Join(in.dir, "cas.pem"))

	for i, d := range []string{"good.test", "plain.test", "wrongname.test", "reports.test"} {
		dns.MX(d, 10, "mx."+d)
		dns.A("mx."+d, fmt.Sprintf("127.0.0.%d", i+2))
		// Every domain wants its reports at reports.test, which reports
		// on itself too: no report must ever be about a report.
		dns.TXT("_smtp._tls."+d, "v=TLSRPTv1; rua=mailto:tlsrpt@reports.test,https://reports.test/tlsrpt")
	}
	good := smtptest.NewMX(t, "127.0.0.2", port, smtptest.MXOptions{TLS: trusted.ServerTLS()})
	plain := smtptest.NewMX(t, "127.0.0.3", port, smtptest.MXOptions{})
	wrong := smtptest.NewMX(t, "127.0.0.4", port, smtptest.MXOptions{TLS: other.ServerTLS()})
	reports := smtptest.NewMX(t, "127.0.0.5", port, smtptest.MXOptions{TLS: trusted.ServerTLS()})
	dns.RR(in.keygen("--domain", "example.test", "--selector", "r"))
	in.start()

	for _, rcpt := range []string{"bob@good.test", "carol@good.test", "dan@plain.test", "eve@wrongname.test"} {
		if err := send(in.relay, "alice@example.test", []string{rcpt}, message); err != nil {
			t.Fatal(err)
		}
	}
	good.Wait(t, 2, 20*time.Second)
	w.waitQueue(func(s string) bool { return strings.Contains(s, "4.7.4") && strings.Contains(s, "4.7.5") },
		"with the plain.test and wrongname.test attempts failed")
	in.stop(syscall.SIGTERM) // the counts are written
	sessions := map[string]int{"good.test": good.Connections(), "plain.test": plain.Connections(), "wrongname.test": wrong.Connections()}
	if ents, _ := os.ReadDir(filepath.Join(in.dir, "var", "tls-reports")); len(ents) != 1 {
		t.Fatalf("tls-reports holds %v, want one day's file", ents)
	}
	if reports.Count() != 0 {
		t.Fatal("a report was sent before the day ended")
	}

	t.Setenv("FACTEUR_TEST_TLSRPT_SKEW", "24h") // tomorrow
	in.start()
	reports.Wait(t, 3, 20*time.Second)
	got := map[string]*rfc8460Report{}
	for _, m := range reports.Messages() {
		if m.From != "" || len(m.To) != 1 || m.To[0] != "tlsrpt@reports.test" {
			t.Errorf("report from <%s> to %q, want from <> to tlsrpt@reports.test", m.From, m.To)
		}
		domain, rep := readReport(t, m.Data)
		got[domain] = rep
		vs := verify(m.Data)
		if len(vs) != 1 || !vs[0].Pass || vs[0].D != "example.test" || vs[0].S != "r" {
			t.Errorf("report on %s: DKIM verdicts %+v, want one pass for example.test/r", domain, vs)
		}
	}
	today := time.Now().UTC().Truncate(24 * time.Hour)
	for domain, n := range sessions {
		rep := got[domain]
		if rep == nil {
			t.Errorf("no report on %s", domain)
			continue
		}
		if rep.OrganizationName != "mx.example.test" || rep.ContactInfo != "postmaster@example.test" || rep.ReportID == "" ||
			!rep.DateRange.Start.Equal(today) || !rep.DateRange.End.Equal(today.Add(24*time.Hour-time.Second)) {
			t.Errorf("%s: report %+v", domain, rep)
		}
		if len(rep.Policies) != 1 {
			t.Errorf("%s: %d policies, want 1", domain, len(rep.Policies))
			continue
		}
		p := rep.Policies[0]
		if p.Policy.Type != "no-policy-found" || p.Policy.Domain != domain || p.Summary.Successful == nil || p.Summary.Failed == nil {
			t.Errorf("%s: policy %+v, summary %+v", domain, p.Policy, p.Summary)
			continue
		}
		wantOK, wantFailed, wantType := n, 0, ""
		switch domain {
		case "plain.test":
			wantOK, wantFailed, wantType = 0, n, "starttls-not-supported"
		case "wrongname.test":
			wantOK, wantFailed, wantType = 0, n, "certificate-host-mismatch"
		}
		if n == 0 || *p.Summary.Successful != wantOK || *p.Summary.Failed != wantFailed {
			t.Errorf("%s: %d successful, %d failed sessions, want %d and %d", domain, *p.Summary.Successful, *p.Summary.Failed, wantOK, wantFailed)
		}
		if wantType == "" {
			if len(p.FailureDetails) != 0 {
				t.Errorf("%s: failure details %+v", domain, p.FailureDetails)
			}
			continue
		}
		if len(p.FailureDetails) != 1 {
			t.Errorf("%s: failure details %+v, want one", domain, p.FailureDetails)
			continue
		}
		f := p.FailureDetails[0]
		if f.ResultType != wantType || f.Count != n || f.ReceivingMX != "mx."+domain || f.Reason == "" ||
			!strings.HasPrefix(f.ReceivingIP, "127.0.0.") || (wantType != "starttls-not-supported" && f.SendingIP == "") {
			t.Errorf("%s: failure detail %+v, want %s x%d", domain, f, wantType, n)
		}
	}
	if got["reports.test"] != nil || len(got) != 3 {
		t.Errorf("reports on %d domains, reports.test among them: %v", len(got), got["reports.test"] != nil)
	}

	in.stop(syscall.SIGTERM)
	dir := filepath.Join(in.dir, "var", "tls-reports")
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if b := readFile(t, filepath.Join(dir, e.Name())); strings.Contains(b, "reports.test") {
			t.Errorf("the delivery of the reports was counted: %s: %s", e.Name(), b)
		}
	}
}

// readReport checks the RFC 8460 5.3 form of a report message and returns
// the domain it is about and the report.
func readReport(t *testing.T, data []byte) (string, *rfc8460Report) {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	domain := m.Header.Get("TLS-Report-Domain")
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/report" || params["report-type"] != "tlsrpt" {
		t.Fatalf("report on %s: Content-Type %q", domain, m.Header.Get("Content-Type"))
	}
	if sub := m.Header.Get("TLS-Report-Submitter"); sub != "example.test" ||
		!strings.HasPrefix(m.Header.Get("Subject"), "Report Domain: "+domain+" Submitter: example.test Report-ID: <") ||
		m.Header.Get("From") != "TLS reports <noreply-tls-reports@example.test>" {
		t.Errorf("report on %s: header %v", domain, m.Header)
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			t.Fatalf("report on %s: no application/tlsrpt+gzip part", domain)
		}
		if err != nil {
			t.Fatal(err)
		}
		if p.Header.Get("Content-Type") != "application/tlsrpt+gzip" {
			continue
		}
		_, disp, _ := mime.ParseMediaType(p.Header.Get("Content-Disposition"))
		zr, err := gzip.NewReader(base64.NewDecoder(base64.StdEncoding, p))
		if err != nil {
			t.Fatal(err)
		}
		var rep rfc8460Report
		if err := json.NewDecoder(zr).Decode(&rep); err != nil {
			t.Fatalf("report on %s: %v", domain, err)
		}
		begin := rep.DateRange.Start.Unix()
		if want := fmt.Sprintf("example.test!%s!%d!%d!%s.json.gz", domain, begin, begin+86399, rep.ReportID); disp["filename"] != want {
			t.Errorf("report on %s: file name %q, want %q", domain, disp["filename"], want)
		}
		if !strings.Contains(m.Header.Get("Subject"), "<"+rep.ReportID+">") {
			t.Errorf("report on %s: Subject %q lacks the report id %s", domain, m.Header.Get("Subject"), rep.ReportID)
		}
		return domain, &rep
	}
}
