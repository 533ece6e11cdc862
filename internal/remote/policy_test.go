package remote

import (
	"context"
	"crypto/tls"
	"errors"
	"strings"
	"sync"
	"testing"

	"facteur/internal/mx"
	"facteur/internal/smtptest"
	"facteur/internal/tlsrpt"
)

// policies hands out fixed HostTLS by host name, and records the sessions.
type policies struct {
	byHost map[string]HostTLS

	mu       sync.Mutex
	sessions []tlsrpt.Session
}

func (p *policies) HostTLS(_ context.Context, domain string, hosts []mx.Host) []HostTLS {
	out := make([]HostTLS, len(hosts))
	for i, h := range hosts {
		out[i] = p.byHost[h.Name]
		out[i].Report.Domain = domain
	}
	return out
}

func (p *policies) record(_ string, s tlsrpt.Session) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sessions = append(p.sessions, s)
}

func (p *policies) failures() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, s := range p.sessions {
		out = append(out, s.ReceivingMX+":"+s.Failure)
	}
	return out
}

func withPolicies(e *env, byHost map[string]HostTLS) *policies {
	p := &policies{byHost: byHost}
	e.client.Policies, e.client.Sessions = p, p.record
	return p
}

// A refused host is skipped, never connected to; the next host takes the
// message, and both outcomes are reported.
func TestPolicyRefusesHost(t *testing.T) {
	e := newEnv(t)
	ca := smtptest.NewCA(t, "mx1.example.test", "mx2.example.test")
	mx1 := e.mx1(t, smtptest.MXOptions{TLS: ca.ServerTLS()})
	mx2 := e.mx2(t, smtptest.MXOptions{TLS: ca.ServerTLS()})
	e.client.RootCAs = ca.Pool()
	sts := tlsrpt.Policy{Type: tlsrpt.PolicySTS}
	p := withPolicies(e, map[string]HostTLS{
		"mx1.example.test": {Mode: Verify, Name: "mta-sts", Why: "mta-sts enforce", Refuse: errors.New("not in the policy"), Report: sts},
		"mx2.example.test": {Mode: Verify, Name: "mta-sts", Report: sts},
	})
	r := e.deliver(newMsg("q1", "alice@example.test"))[0][0]
	if r.Status != Sent || r.Host != "mx2.example.test" || r.TLSPolicy != "mta-sts" || !r.TLS {
		t.Errorf("result %+v, want sent by mx2 under mta-sts", r)
	}
	if mx1.Connections() != 0 {
		t.Errorf("the refused host got %d connections", mx1.Connections())
	}
	wantCounts(t, nil, mx2, 0, 1)
	got := p.failures()
	if len(got) != 2 || got[0] != "mx1.example.test:validation-failure" || got[1] != "mx2.example.test:" {
		t.Errorf("sessions %q, want mx1's refusal then mx2's success", got)
	}
}

// A Check replaces the WebPKI: a self-signed certificate it accepts is
// fine, one it refuses fails the host with the check's result type and the
// policy's reason, and a session is never reused under another check.
func TestPolicyCheck(t *testing.T) {
	e := newEnv(t)
	ca := smtptest.NewCA(t, "mx1.example.test")
	mx1 := e.mx1(t, smtptest.MXOptions{TLS: ca.ServerTLS()})
	var seen string
	accept := HostTLS{Mode: Required, Name: "dane", Key: "accept", Check: func(host string, cs tls.ConnectionState) error {
		seen = host
		if len(cs.PeerCertificates) == 0 {
			return errors.New("no certificate")
		}
		return nil
	}}
	refuse := HostTLS{Mode: Required, Name: "dane", Key: "refuse", Check: func(string, tls.ConnectionState) error {
		return &tlsrpt.Failure{Type: tlsrpt.TLSAInvalid, Err: errors.New("no TLSA record matches")}
	}}
	p := withPolicies(e, map[string]HostTLS{"mx1.example.test": accept})
	if r := e.deliverSingle(newMsg("q1", "alice@example.test"))[0][0]; r.Status != Sent || !r.TLS || r.TLSPolicy != "dane" {
		t.Fatalf("accepted: %+v", r)
	}
	if seen != "mx1.example.test" {
		t.Errorf("check called for %q", seen)
	}
	p.byHost["mx1.example.test"] = refuse
	r := e.deliverSingle(newMsg("q2", "alice@example.test"))[0][0]
	if r.Status != Transient || !strings.HasPrefix(r.Text, "dane: ") || !strings.Contains(r.Text, "no TLSA record matches") {
		t.Errorf("refused: %+v, want transient with the policy's reason", r)
	}
	if mx1.Count() != 1 || mx1.Connections() != 2 {
		t.Errorf("%d messages over %d connections; want the second message refused on a new connection", mx1.Count(), mx1.Connections())
	}
	if got := p.failures(); len(got) != 2 || got[1] != "mx1.example.test:tlsa-invalid" {
		t.Errorf("sessions %q", got)
	}
}

// Required TLS to a host that does not offer it is reported as such.
func TestPolicyReportsMissingSTARTTLS(t *testing.T) {
	e := newEnv(t)
	e.mx1(t, smtptest.MXOptions{})
	p := withPolicies(e, map[string]HostTLS{"mx1.example.test": {Mode: Verify, Name: "mta-sts", Why: "mta-sts enforce"}})
	r := e.deliverSingle(newMsg("q1", "alice@example.test"))[0][0]
	if r.Status != Transient || !strings.HasPrefix(r.Text, "mta-sts enforce: ") {
		t.Errorf("result %+v", r)
	}
	if got := p.failures(); len(got) != 1 || got[0] != "mx1.example.test:starttls-not-supported" {
		t.Errorf("sessions %q", got)
	}
}

// An Audit failure is reported, and the message delivered all the same.
func TestPolicyAudit(t *testing.T) {
	e := newEnv(t)
	ca := smtptest.NewCA(t, "mx1.example.test")
	mx1 := e.mx1(t, smtptest.MXOptions{TLS: ca.ServerTLS()})
	p := withPolicies(e, map[string]HostTLS{"mx1.example.test": {Mode: Opportunistic, Name: "mta-sts",
		Audit: func(string, tls.ConnectionState) error {
			return &tlsrpt.Failure{Type: tlsrpt.CertificateNotTrusted, Err: errors.New("unknown authority")}
		}}})
	if r := e.deliverSingle(newMsg("q1", "alice@example.test"))[0][0]; r.Status != Sent || !r.TLS {
		t.Errorf("result %+v, want sent over TLS", r)
	}
	wantCounts(t, mx1, nil, 1, 0)
	if got := p.failures(); len(got) != 1 || got[0] != "mx1.example.test:certificate-not-trusted" {
		t.Errorf("sessions %q", got)
	}
}

// A session that carries only TLS reports is not reported, so that reports
// on a failing domain do not feed the next ones; one that also carries
// other mail is.
func TestPolicyDoesNotReportReportDeliveries(t *testing.T) {
	e := newEnv(t)
	e.client.IdleTimeout = -1 // a new session, and its report, per call
	mx1 := e.mx1(t, smtptest.MXOptions{})
	p := withPolicies(e, map[string]HostTLS{"mx1.example.test": {Mode: Opportunistic}})
	report := func(id string) *Message {
		m := newMsg(id, "tls@example.test")
		m.TLSReport = true
		return m
	}
	e.deliverSingle(report("r1"), report("r2"))
	if got := p.failures(); len(got) != 0 {
		t.Errorf("sessions %q for reports alone, want none", got)
	}
	e.deliverSingle(report("r3"), newMsg("q1", "alice@example.test"))
	if got := p.failures(); len(got) != 1 || got[0] != "mx1.example.test:starttls-not-supported" {
		t.Errorf("sessions %q, want the session with other mail", got)
	}
	wantCounts(t, mx1, nil, 4, 0)
}
