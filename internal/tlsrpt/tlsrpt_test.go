package tlsrpt

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"net/netip"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// clock is a settable time for the counters and the reporter.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

func date(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

var (
	sts = Policy{Type: PolicySTS, Domain: "remote.test", MXHosts: []string{"*.remote.test"},
		Strings: []string{"version: STSv1", "mode: testing", "mx: *.remote.test", "max_age: 86400"}}
	none = Policy{Type: NoPolicy, Domain: "remote.test"}
)

func session(p Policy, failure, mx, ip string) Session {
	s := Session{Policy: p, Failure: failure, ReceivingMX: mx, SendingIP: netip.MustParseAddr("192.0.2.1")}
	if ip != "" {
		s.ReceivingIP = netip.MustParseAddr(ip)
	}
	if failure != "" {
		s.Reason = failure + " at " + mx
	}
	return s
}

func openCounter(t *testing.T, dir string, c *clock) *Counter {
	t.Helper()
	ct, err := OpenCounter(dir, c.now)
	if err != nil {
		t.Fatal(err)
	}
	return ct
}

// TestCounterCountsByPolicyAndDetail: sessions are counted per domain, per
// policy, and failures per detail; the same failure twice is one detail
// counted twice.
func TestCounterCountsByPolicyAndDetail(t *testing.T) {
	c := &clock{t: date("2026-12-01T10:00:00Z")}
	ct := openCounter(t, t.TempDir(), c)
	for range 3 {
		ct.Add("Remote.TEST.", session(sts, "", "mx1.remote.test", "203.0.113.1"))
	}
	ct.Add("remote.test", session(sts, CertificateExpired, "mx1.remote.test", "203.0.113.1"))
	ct.Add("remote.test", session(sts, CertificateExpired, "mx1.remote.test", "203.0.113.1"))
	ct.Add("remote.test", session(sts, StartTLSNotSupported, "mx2.remote.test", "203.0.113.2"))
	ct.Add("remote.test", session(none, "", "mx1.remote.test", "203.0.113.1"))
	ct.Add("other.test", session(Policy{Type: NoPolicy, Domain: "other.test"}, StartTLSNotSupported, "mx.other.test", ""))

	day := ct.Day("2026-12-01")
	if len(day) != 2 {
		t.Fatalf("domains %v, want remote.test and other.test", day)
	}
	r := day["remote.test"]
	if len(r.Policies) != 2 {
		t.Fatalf("remote.test: %d policies, want 2", len(r.Policies))
	}
	p := r.Policies[0]
	if !samePolicy(p.Policy, sts) || p.Success != 3 || p.Failure != 3 {
		t.Errorf("sts: %+v, want 3 successes, 3 failures", p)
	}
	want := []DetailCount{
		{Detail{CertificateExpired, "192.0.2.1", "mx1.remote.test", "203.0.113.1", "certificate-expired at mx1.remote.test"}, 2},
		{Detail{StartTLSNotSupported, "192.0.2.1", "mx2.remote.test", "203.0.113.2", "starttls-not-supported at mx2.remote.test"}, 1},
	}
	if !reflect.DeepEqual(p.Failures, want) {
		t.Errorf("failures\n%+v, want\n%+v", p.Failures, want)
	}
	if q := r.Policies[1]; q.Policy.Type != NoPolicy || q.Success != 1 || q.Failure != 0 {
		t.Errorf("no-policy-found: %+v", q)
	}
	if d := day["other.test"].Policies[0].Failures[0]; d.ReceivingIP != "" || d.Count != 1 {
		t.Errorf("other.test: %+v, want no receiving IP", d)
	}
}

// TestCounterBoundsDetails: past maxDetails distinct failures, sessions
// still count in the summary, and reasons are cut.
func TestCounterBoundsDetails(t *testing.T) {
	c := &clock{t: date("2026-12-01T10:00:00Z")}
	ct := openCounter(t, t.TempDir(), c)
	for i := range maxDetails + 10 {
		s := session(none, ValidationFailure, "mx.remote.test", "")
		// All differ; half are cut in the middle of an é.
		s.Reason = strconv.Itoa(i) + strings.Repeat("é", maxReasonLen)
		ct.Add("remote.test", s)
	}
	p := ct.Day("2026-12-01")["remote.test"].Policies[0]
	if p.Failure != maxDetails+10 || len(p.Failures) != maxDetails {
		t.Errorf("%d failures in %d details, want %d in %d", p.Failure, len(p.Failures), maxDetails+10, maxDetails)
	}
	for _, f := range p.Failures {
		if len(f.Reason) > maxReasonLen {
			t.Errorf("reason of %d bytes", len(f.Reason))
		}
		if strings.ToValidUTF8(f.Reason, "?") != f.Reason {
			t.Errorf("reason %q is not UTF-8", f.Reason)
		}
	}
}

// TestCounterSurvivesReopen: flushed counts are read back by a new
// Counter; cleared ones are gone, file and all.
func TestCounterSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: date("2026-12-01T23:00:00Z")}
	ct := openCounter(t, dir, c)
	ct.Add("remote.test", session(sts, "", "mx1.remote.test", "203.0.113.1"))
	ct.Add("remote.test", session(sts, CertificateExpired, "mx1.remote.test", "203.0.113.1"))
	ct.Add("other.test", session(none, "", "mx.other.test", "203.0.113.9"))
	if err := ct.Flush(); err != nil {
		t.Fatal(err)
	}
	ct.Add("remote.test", session(sts, "", "mx1.remote.test", "203.0.113.1")) // not flushed: a crash loses it

	again := openCounter(t, dir, c)
	p := again.Day("2026-12-01")["remote.test"].Policies[0]
	if !samePolicy(p.Policy, sts) || p.Success != 1 || p.Failure != 1 || len(p.Failures) != 1 || p.Failures[0].Count != 1 {
		t.Errorf("after reopening: %+v", p)
	}
	if err := again.Clear("2026-12-01", "remote.test"); err != nil {
		t.Fatal(err)
	}
	if got := openCounter(t, dir, c).Day("2026-12-01"); len(got) != 1 || got["other.test"] == nil {
		t.Errorf("after clearing remote.test: %v", got)
	}
	if err := again.Clear("2026-12-01", "other.test"); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("files left after clearing every domain: %v", ents)
	}
}

// TestCounterDayBoundary: a session belongs to the UTC day of the clock;
// a day is over once the clock is past its midnight, not before.
func TestCounterDayBoundary(t *testing.T) {
	// 23:59:59 in UTC is already the next day in Paris: UTC decides.
	paris := time.FixedZone("CET", 3600)
	c := &clock{t: date("2026-12-01T23:59:59Z").In(paris)}
	ct := openCounter(t, t.TempDir(), c)
	ct.Add("remote.test", session(none, "", "mx.remote.test", ""))
	if got := ct.Ended(); len(got) != 0 {
		t.Errorf("ended before midnight: %v", got)
	}
	c.set(date("2026-12-02T00:00:00Z"))
	ct.Add("remote.test", session(none, StartTLSNotSupported, "mx.remote.test", ""))
	if got := ct.Ended(); !slices.Equal(got, []string{"2026-12-01"}) {
		t.Errorf("ended at midnight: %v, want 2026-12-01", got)
	}
	if p := ct.Day("2026-12-01")["remote.test"].Policies[0]; p.Success != 1 || p.Failure != 0 {
		t.Errorf("2026-12-01: %+v", p)
	}
	if p := ct.Day("2026-12-02")["remote.test"].Policies[0]; p.Success != 0 || p.Failure != 1 {
		t.Errorf("2026-12-02: %+v", p)
	}
}

// TestReportJSONShape: the report has the members and nesting of RFC 8460
// 4.4's example, and nothing else.
func TestReportJSONShape(t *testing.T) {
	c := &clock{t: date("2016-04-01T12:00:00Z")}
	ct := openCounter(t, t.TempDir(), c)
	for range 2 {
		ct.Add("remote.test", session(sts, "", "mx1.remote.test", "203.0.113.1"))
	}
	ct.Add("remote.test", session(sts, ValidationFailure, "mx1.remote.test", "203.0.113.1"))
	ct.Add("remote.test", session(none, "", "mx1.remote.test", "203.0.113.1"))
	sub := Submitter{Hostname: "mx.example.org", Domain: "example.org"}
	r := sub.NewReport("remote.test", date("2016-04-01T00:00:00Z"), ct.Day("2016-04-01")["remote.test"])
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	id := got["report-id"].(string)
	if id == "" || strings.Trim(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") != "" {
		t.Errorf("report-id %q: want letters and digits", id)
	}
	want := map[string]any{
		"organization-name": "mx.example.org",
		"date-range": map[string]any{
			"start-datetime": "2016-04-01T00:00:00Z",
			"end-datetime":   "2016-04-01T23:59:59Z",
		},
		"contact-info": "postmaster@example.org",
		"report-id":    id,
		"policies": []any{
			map[string]any{
				"policy": map[string]any{
					"policy-type":   "sts",
					"policy-string": []any{"version: STSv1", "mode: testing", "mx: *.remote.test", "max_age: 86400"},
					"policy-domain": "remote.test",
					"mx-host":       []any{"*.remote.test"},
				},
				"summary": map[string]any{
					"total-successful-session-count": 2.0,
					"total-failure-session-count":    1.0,
				},
				"failure-details": []any{map[string]any{
					"result-type":           "validation-failure",
					"sending-mta-ip":        "192.0.2.1",
					"receiving-mx-hostname": "mx1.remote.test",
					"receiving-ip":          "203.0.113.1",
					"failed-session-count":  1.0,
					"failure-reason-code":   "validation-failure at mx1.remote.test",
				}},
			},
			map[string]any{
				"policy": map[string]any{"policy-type": "no-policy-found", "policy-domain": "remote.test"},
				"summary": map[string]any{
					"total-successful-session-count": 1.0,
					"total-failure-session-count":    0.0,
				},
			},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("report\n%s\nwant the structure of\n%v", b, want)
	}
}

func TestFileName(t *testing.T) {
	r := &Report{ReportID: "ABC123", DateRange: DateRange{Start: date("2016-08-01T00:00:00Z"), End: date("2016-08-01T23:59:59Z")}}
	if got, want := r.FileName("example.org", "remote.test"), "example.org!remote.test!1470009600!1470095999!ABC123.json.gz"; got != want {
		t.Errorf("file name %q, want %q", got, want)
	}
}

func TestParseRecord(t *testing.T) {
	for _, tc := range []struct {
		txts   []string
		mailto []string
		other  []string
		err    bool
	}{
		{txts: []string{"v=TLSRPTv1; rua=mailto:reports@example.org"}, mailto: []string{"reports@example.org"}},
		{txts: []string{"v=spf1 -all", "v=TLSRPTv1;rua=mailto:a@x.test , https://r.x.test/tlsrpt,mailto:b%21c@x.test;"},
			mailto: []string{"a@x.test", "b!c@x.test"}, other: []string{"https://r.x.test/tlsrpt"}},
		{txts: []string{"v=TLSRPTv1; ext=1; rua=mailto:a@x.test?subject=tls"}, mailto: []string{"a@x.test"}},
		{txts: nil, err: true},
		{txts: []string{"v=TLSRPTv1; rua=mailto:a@x.test", "v=TLSRPTv1; rua=mailto:b@x.test"}, err: true},
		{txts: []string{"v=TLSRPTv1"}, err: true},
		{txts: []string{"v=TLSRPTv1; rua=a@x.test"}, err: true},
		{txts: []string{"v=TLSRPTv1; rua=mailto:nobody"}, err: true},
		{txts: []string{"v=TLSRPTv10; rua=mailto:a@x.test"}, err: true},
	} {
		rec, err := FindRecord(tc.txts)
		if tc.err {
			if err == nil {
				t.Errorf("%q: %+v, want an error", tc.txts, rec)
			}
			continue
		}
		if err != nil || !slices.Equal(rec.Mailto, tc.mailto) || !slices.Equal(rec.Other, tc.other) {
			t.Errorf("%q: %+v, %v; want mailto %q, other %q", tc.txts, rec, err, tc.mailto, tc.other)
		}
	}
}

// sent is one message a test Reporter queued.
type sent struct {
	rcpts []string
	msg   []byte
}

func testReporter(t *testing.T, c *clock, txt map[string][]string, lookupErr error) (*Reporter, *[]sent) {
	t.Helper()
	var out []sent
	r := &Reporter{
		Counter:   openCounter(t, t.TempDir(), c),
		Submitter: Submitter{Hostname: "mx.example.org", Domain: "example.org"},
		LookupTXT: func(_ context.Context, name string) ([]string, error) {
			if lookupErr != nil {
				return nil, lookupErr
			}
			if v, ok := txt[name]; ok {
				return v, nil
			}
			return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
		},
		Send: func(rcpts []string, msg []byte) error {
			out = append(out, sent{rcpts, msg})
			return nil
		},
		Now: c.now,
		Log: slog.New(slog.DiscardHandler),
	}
	return r, &out
}

// TestReporterSendsEndedDays: once the day is over, each domain that
// publishes a record gets one RFC 8460 message with its gzipped report,
// and its counts are cleared; a domain without a record gets nothing and
// is cleared too; today's counts wait.
func TestReporterSendsEndedDays(t *testing.T) {
	c := &clock{t: date("2026-12-01T15:00:00Z")}
	r, out := testReporter(t, c, map[string][]string{
		"_smtp._tls.remote.test": {"v=TLSRPTv1; rua=mailto:tls@reports.test,mailto:other@reports.test,https://reports.test/x"},
	}, nil)
	r.Counter.Add("remote.test", session(none, "", "mx.remote.test", "203.0.113.1"))
	r.Counter.Add("remote.test", session(none, StartTLSNotSupported, "mx.remote.test", "203.0.113.1"))
	r.Counter.Add("silent.test", session(Policy{Type: NoPolicy, Domain: "silent.test"}, "", "mx.silent.test", ""))
	r.SendEnded(context.Background())
	if len(*out) != 0 {
		t.Fatalf("sent %d reports before the day ended", len(*out))
	}
	c.set(date("2026-12-02T00:00:30Z"))
	r.Counter.Add("remote.test", session(none, "", "mx.remote.test", "203.0.113.1")) // the new day's
	r.SendEnded(context.Background())
	if len(*out) != 1 {
		t.Fatalf("sent %d reports, want 1 (remote.test)", len(*out))
	}
	got := (*out)[0]
	if !slices.Equal(got.rcpts, []string{"tls@reports.test", "other@reports.test"}) {
		t.Errorf("sent to %q", got.rcpts)
	}
	rep, name, h := parseReportMessage(t, got.msg)
	if want := "example.org!remote.test!1796083200!1796169599!" + rep.ReportID + ".json.gz"; name != want {
		t.Errorf("attachment %q, want %q", name, want)
	}
	for k, want := range map[string]string{
		"Tls-Report-Domain":    "remote.test",
		"Tls-Report-Submitter": "example.org",
		"Subject":              "Report Domain: remote.test Submitter: example.org Report-ID: <" + rep.ReportID + ">",
		"From":                 "TLS reports <noreply-tls-reports@example.org>",
		"To":                   "<tls@reports.test>, <other@reports.test>",
	} {
		if v := h.Get(k); v != want {
			t.Errorf("%s: %q, want %q", k, v, want)
		}
	}
	if len(rep.Policies) != 1 || rep.Policies[0].Summary != (Summary{1, 1}) || rep.Policies[0].FailureDetails[0].ResultType != StartTLSNotSupported {
		t.Errorf("report: %+v", rep)
	}
	if len(r.Counter.Day("2026-12-01")) != 0 || len(r.Counter.Ended()) != 0 {
		t.Errorf("counts of the day left: %v", r.Counter.Day("2026-12-01"))
	}
	if len(r.Counter.Day("2026-12-02")) != 1 {
		t.Error("the new day's counts were cleared")
	}
	r.SendEnded(context.Background())
	if len(*out) != 1 {
		t.Error("a report was sent twice")
	}
}

// TestReporterKeepsCountsOnLookupFailure: a DNS failure is no answer; the
// counts wait for the next try, and are dropped once days old.
func TestReporterKeepsCountsOnLookupFailure(t *testing.T) {
	c := &clock{t: date("2026-12-01T15:00:00Z")}
	r, out := testReporter(t, c, nil, &net.DNSError{Err: "server misbehaving", IsTemporary: true})
	r.Counter.Add("remote.test", session(none, "", "mx.remote.test", ""))
	c.set(date("2026-12-02T01:00:00Z"))
	r.SendEnded(context.Background())
	if len(*out) != 0 || len(r.Counter.Ended()) != 1 {
		t.Fatalf("sent %d, ended %v: want the counts kept", len(*out), r.Counter.Ended())
	}
	c.set(date("2026-12-05T01:00:00Z"))
	r.SendEnded(context.Background())
	if len(r.Counter.Ended()) != 0 {
		t.Errorf("counts of %v still kept after days", r.Counter.Ended())
	}
}

// parseReportMessage checks the MIME structure of a report message and
// returns the report, its attachment's name and the message header.
func parseReportMessage(t *testing.T, msg []byte) (*Report, string, mail.Header) {
	t.Helper()
	if bytes.Contains(bytes.ReplaceAll(msg, []byte("\r\n"), nil), []byte("\n")) {
		t.Error("a bare LF in the message")
	}
	m, err := mail.ReadMessage(bytes.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/report" || params["report-type"] != "tlsrpt" {
		t.Fatalf("Content-Type %q", m.Header.Get("Content-Type"))
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	var parts []*multipart.Part
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, p)
		if p.Header.Get("Content-Type") == "application/tlsrpt+gzip" {
			b, _ := io.ReadAll(p)
			body, err := base64.StdEncoding.DecodeString(string(bytes.ReplaceAll(b, []byte("\r\n"), nil)))
			if err != nil {
				t.Fatal(err)
			}
			_, dp, _ := mime.ParseMediaType(p.Header.Get("Content-Disposition"))
			zr, err := gzip.NewReader(bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			var rep Report
			if err := json.NewDecoder(zr).Decode(&rep); err != nil {
				t.Fatal(err)
			}
			if len(parts) != 2 || !strings.HasPrefix(parts[0].Header.Get("Content-Type"), "text/plain") {
				t.Errorf("the report is not the second part after a text/plain one")
			}
			return &rep, dp["filename"], m.Header
		}
	}
	t.Fatal("no application/tlsrpt+gzip part")
	return nil, "", nil
}
