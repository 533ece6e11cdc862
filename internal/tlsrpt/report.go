package tlsrpt

import (
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"mime"
	"mime/multipart"
	"net/textproto"
	"strconv"
	"strings"
	"time"
)

// Report is the JSON body of a TLS report (RFC 8460 4).
type Report struct {
	OrganizationName string         `json:"organization-name"`
	DateRange        DateRange      `json:"date-range"`
	ContactInfo      string         `json:"contact-info"`
	ReportID         string         `json:"report-id"`
	Policies         []PolicyResult `json:"policies"`
}

type DateRange struct {
	Start time.Time `json:"start-datetime"`
	End   time.Time `json:"end-datetime"`
}

// PolicyResult is the sessions held under one policy.
type PolicyResult struct {
	Policy         ReportPolicy    `json:"policy"`
	Summary        Summary         `json:"summary"`
	FailureDetails []FailureDetail `json:"failure-details,omitempty"`
}

type ReportPolicy struct {
	Type    string   `json:"policy-type"`
	Strings []string `json:"policy-string,omitempty"`
	Domain  string   `json:"policy-domain"`
	MXHost  []string `json:"mx-host,omitempty"`
}

type Summary struct {
	Successful int64 `json:"total-successful-session-count"`
	Failed     int64 `json:"total-failure-session-count"`
}

type FailureDetail struct {
	ResultType  string `json:"result-type"`
	SendingIP   string `json:"sending-mta-ip,omitempty"`
	ReceivingMX string `json:"receiving-mx-hostname,omitempty"`
	ReceivingIP string `json:"receiving-ip,omitempty"`
	Count       int64  `json:"failed-session-count"`
	Reason      string `json:"failure-reason-code,omitempty"`
}

// Submitter is who sends the reports.
type Submitter struct {
	// Hostname is the organization-name and the Message-ID's domain.
	Hostname string
	// Domain names the submitter (TLS-Report-Submitter, the file name)
	// and is the domain of the From (noreply-tls-reports@) and contact
	// (postmaster@) addresses.
	Domain string
}

// From is the address the reports come from; nothing reads its mail.
func (s Submitter) From() string { return "noreply-tls-reports@" + s.Domain }

// Contact is where a domain that reads a report can write back.
func (s Submitter) Contact() string { return "postmaster@" + s.Domain }

// NewReport makes the report of the UTC day that starts at day about the
// sessions with domain's servers counted in t, under a new report id.
func (s Submitter) NewReport(domain string, day time.Time, t *Tally) *Report {
	start := day.UTC()
	r := &Report{
		OrganizationName: s.Hostname,
		DateRange:        DateRange{Start: start, End: start.Add(24*time.Hour - time.Second)},
		ContactInfo:      s.Contact(),
		// Letters and digits only, as the file name's unique-id must be.
		ReportID: rand.Text(),
	}
	for _, p := range t.Policies {
		pr := PolicyResult{
			Policy:  ReportPolicy{Type: p.Policy.Type, Strings: p.Policy.Strings, Domain: p.Policy.Domain, MXHost: p.Policy.MXHosts},
			Summary: Summary{Successful: p.Success, Failed: p.Failure},
		}
		if pr.Policy.Domain == "" {
			pr.Policy.Domain = domain
		}
		for _, f := range p.Failures {
			pr.FailureDetails = append(pr.FailureDetails, FailureDetail{ResultType: f.ResultType, SendingIP: f.SendingIP,
				ReceivingMX: f.ReceivingMX, ReceivingIP: f.ReceivingIP, Count: f.Count, Reason: f.Reason})
		}
		r.Policies = append(r.Policies, pr)
	}
	return r
}

// FileName is the report's attachment name as RFC 8460 5.3 recommends:
// sender!policy-domain!begin!end!unique-id.json.gz, the times in seconds
// since the epoch.
func (r *Report) FileName(sender, domain string) string {
	return strings.Join([]string{sender, domain,
		strconv.FormatInt(r.DateRange.Start.Unix(), 10), strconv.FormatInt(r.DateRange.End.Unix(), 10),
		r.ReportID}, "!") + ".json.gz"
}

// Message renders the mail that carries the report on domain to the
// addresses to (RFC 8460 5.3): multipart/report with the JSON gzipped, CRLF
// line endings.
func (s Submitter) Message(r *Report, domain string, to []string, now time.Time) ([]byte, error) {
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	if err := json.NewEncoder(zw).Encode(r); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	var msg bytes.Buffer
	// The writer outputs nothing before the first part, so its boundary
	// can go in the header first.
	mw := multipart.NewWriter(&msg)
	h := func(name, value string) { msg.WriteString(name + ": " + value + "\r\n") }
	h("From", "TLS reports <"+s.From()+">")
	h("To", "<"+strings.Join(to, ">, <")+">")
	h("Subject", fmt.Sprintf("Report Domain: %s Submitter: %s Report-ID: <%s>", domain, s.Domain, r.ReportID))
	h("Date", now.Format(time.RFC1123Z))
	h("Message-ID", "<tlsrpt."+r.ReportID+"@"+s.Hostname+">")
	h("TLS-Report-Domain", domain)
	h("TLS-Report-Submitter", s.Domain)
	h("Auto-Submitted", "auto-generated")
	h("MIME-Version", "1.0")
	h("Content-Type", mime.FormatMediaType("multipart/report", map[string]string{"report-type": "tlsrpt", "boundary": mw.Boundary()}))
	msg.WriteString("\r\nThis is a MIME-formatted message.\r\n")

	text, err := mw.CreatePart(textproto.MIMEHeader{
		"Content-Type":              {"text/plain; charset=us-ascii"},
		"Content-Transfer-Encoding": {"7bit"},
	})
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(text, "This is an aggregate TLS report (RFC 8460) from %s about the mail it sent to %s\r\n"+
		"from %s to %s.\r\n", s.Domain, domain, r.DateRange.Start.Format(time.RFC3339), r.DateRange.End.Format(time.RFC3339))
	att, err := mw.CreatePart(textproto.MIMEHeader{
		"Content-Type":              {"application/tlsrpt+gzip"},
		"Content-Transfer-Encoding": {"base64"},
		"Content-Disposition":       {mime.FormatMediaType("attachment", map[string]string{"filename": r.FileName(s.Domain, domain)})},
	})
	if err != nil {
		return nil, err
	}
	b64 := base64.StdEncoding.EncodeToString(gz.Bytes())
	for len(b64) > 76 {
		att.Write([]byte(b64[:76] + "\r\n"))
		b64 = b64[76:]
	}
	att.Write([]byte(b64 + "\r\n"))
	if err := mw.Close(); err != nil {
		return nil, err
	}
	return msg.Bytes(), nil
}
