package dane

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"facteur/internal/mx"
	"facteur/internal/remote"
	"facteur/internal/resolver"
	"facteur/internal/smtptest"
	"facteur/internal/tlspolicy"
	"facteur/internal/tlsrpt"
)

const owner = "_25._tcp.mx1.example.test."

// tlsa is the record of usage, selector and matching type for cert, made
// by miekg/dns rather than by the code under test.
func tlsa(t *testing.T, usage, selector, matching int, cert *x509.Certificate) string {
	t.Helper()
	data, err := dns.CertificateToDANE(uint8(selector), uint8(matching), cert)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%d %d %d %s", usage, selector, matching, data)
}

func parsePEM(t *testing.T, b []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(b)
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// world is a fake validating resolver and the policy asking it.
type world struct {
	dns    *smtptest.DNSServer
	policy Policy
}

func newWorld(t *testing.T) *world {
	dnsSrv := smtptest.NewDNS(t)
	res, err := resolver.New(dnsSrv.Addr(), 500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if !res.TrustsAD() {
		t.Fatal("a resolver on loopback is not trusted")
	}
	return &world{dns: dnsSrv, policy: Policy{Resolver: res}}
}

var secureHost = mx.Host{Name: "mx1.example.test", Secure: true}

func (w *world) hostTLS(t *testing.T) (remote.HostTLS, bool) {
	t.Helper()
	return w.policy.HostTLS(context.Background(), "example.test", secureHost)
}

func TestHostTLS(t *testing.T) {
	ca := smtptest.NewCA(t, "mx1.example.test")
	leaf := parsePEM(t, ca.CertPEM)
	ee := tlsa(t, 3, 1, 1, leaf)

	t.Run("secure usable records: TLS required, checked, reported", func(t *testing.T) {
		w := newWorld(t)
		w.dns.RR(owner + " IN TLSA " + ee)
		w.dns.RR(owner + " IN TLSA 1 1 1 " + strings.Repeat("ab", 32))
		w.dns.Secure(owner, true)
		ht, ok := w.hostTLS(t)
		if !ok || ht.Mode != remote.Required || ht.Check == nil || ht.Refuse != nil || ht.Name != "dane" || ht.Key == "" {
			t.Fatalf("got %+v, %v; want a required, checked policy", ht, ok)
		}
		r := ht.Report
		if r.Type != tlsrpt.PolicyTLSA || r.Domain != "example.test" || len(r.Strings) != 2 ||
			!strings.EqualFold(r.Strings[0], ee) || !strings.HasPrefix(r.Strings[1], "1 1 1 ABAB") {
			t.Errorf("report %+v", r)
		}
		if err := ht.Check("mx1.example.test", tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf}}); err != nil {
			t.Errorf("the pinned certificate is refused: %v", err)
		}
	})
	t.Run("the key changes with the records", func(t *testing.T) {
		w := newWorld(t)
		w.dns.SecureAll(true)
		w.dns.RR(owner + " IN TLSA " + ee)
		one, _ := w.hostTLS(t)
		w.dns.RR(owner + " IN TLSA " + tlsa(t, 3, 0, 1, leaf))
		two, _ := w.hostTLS(t)
		again, _ := w.hostTLS(t)
		if one.Key == two.Key || two.Key != again.Key {
			t.Errorf("keys %q %q %q: want different records to differ and the same to agree", one.Key, two.Key, again.Key)
		}
	})
	t.Run("only unusable records: TLS required, not authenticated", func(t *testing.T) {
		w := newWorld(t)
		w.dns.RR(owner + " IN TLSA " + tlsa(t, 1, 1, 1, leaf)) // PKIX-EE: not for SMTP
		w.dns.RR(owner + " IN TLSA 0 0 1 " + strings.Repeat("cd", 32))
		w.dns.RR(owner + " IN TLSA 3 1 1 abcd") // a digest of the wrong size
		w.dns.Secure(owner, true)
		ht, ok := w.hostTLS(t)
		if !ok || ht.Mode != remote.Required || ht.Check != nil || ht.Refuse != nil || len(ht.Report.Strings) != 3 {
			t.Errorf("got %+v, %v; want TLS required without a check", ht, ok)
		}
	})
	for _, tc := range []struct {
		name  string
		setup func(*smtptest.DNSServer)
	}{
		{"no records, denial validated", func(d *smtptest.DNSServer) { d.Secure(owner, true) }},
		{"no such name, denial validated", func(d *smtptest.DNSServer) { d.NXDomain(owner); d.Secure(owner, true) }},
		{"records not validated", func(d *smtptest.DNSServer) { d.RR(owner + " IN TLSA " + ee); d.Secure(owner, false) }},
	} {
		t.Run(tc.name+": no DANE", func(t *testing.T) {
			w := newWorld(t)
			tc.setup(w.dns)
			if ht, ok := w.hostTLS(t); ok {
				t.Errorf("got %+v, want no DANE", ht)
			}
		})
	}
	for _, tc := range []struct {
		name  string
		setup func(*smtptest.DNSServer)
	}{
		{"SERVFAIL", func(d *smtptest.DNSServer) { d.ServFail(owner) }},
		{"timeout", func(d *smtptest.DNSServer) { d.Timeout(owner) }},
	} {
		t.Run(tc.name+": host refused", func(t *testing.T) {
			w := newWorld(t)
			w.dns.RR(owner + " IN TLSA " + ee)
			w.dns.SecureAll(true)
			tc.setup(w.dns)
			ht, ok := w.hostTLS(t)
			if !ok || ht.Refuse == nil || tlsrpt.TypeOf(ht.Refuse) != tlsrpt.DNSSECInvalid || ht.Mode != remote.Required {
				t.Errorf("got %+v, %v; want the host refused as dnssec-invalid", ht, ok)
			}
		})
	}
}

// check returns the Check for the given records, published securely.
func check(t *testing.T, records ...string) func(string, tls.ConnectionState) error {
	t.Helper()
	w := newWorld(t)
	w.dns.Secure(owner, true)
	for _, r := range records {
		w.dns.RR(owner + " IN TLSA " + r)
	}
	ht, ok := w.hostTLS(t)
	if !ok || ht.Check == nil {
		t.Fatalf("records %q: got %+v, %v", records, ht, ok)
	}
	return ht.Check
}

func peer(certs ...*x509.Certificate) tls.ConnectionState {
	return tls.ConnectionState{PeerCertificates: certs}
}

func TestDANEEE(t *testing.T) {
	ca := smtptest.NewCA(t, "elsewhere.example.net") // the name does not matter
	leaf := parsePEM(t, ca.CertPEM)
	other := parsePEM(t, smtptest.NewCA(t, "mx1.example.test").CertPEM)
	expired := selfSigned(t, "mx1.example.test", time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour))
	for _, rec := range [][3]int{{3, 1, 1}, {3, 0, 1}, {3, 1, 2}, {3, 0, 2}, {3, 1, 0}, {3, 0, 0}} {
		c := check(t, tlsa(t, rec[0], rec[1], rec[2], leaf))
		if err := c("mx1.example.test", peer(leaf)); err != nil {
			t.Errorf("%v: matching certificate refused: %v", rec, err)
		}
		err := c("mx1.example.test", peer(other))
		if tlsrpt.TypeOf(err) != tlsrpt.TLSAInvalid || !strings.Contains(err.Error(), "no TLSA record") {
			t.Errorf("%v: another certificate: %v, want tlsa-invalid", rec, err)
		}
	}
	if err := check(t, tlsa(t, 3, 1, 1, expired))("mx1.example.test", peer(expired)); err != nil {
		t.Errorf("an expired certificate pinned by DANE-EE is refused: %v", err)
	}
	// A DANE-EE record pins the server's own certificate, never one of
	// its chain.
	chain := parsePEM(t, ca.CAPEM)
	if err := check(t, tlsa(t, 3, 1, 1, chain))("mx1.example.test", peer(leaf, chain)); err == nil {
		t.Error("DANE-EE matched the issuer, not the server's certificate")
	}
	if err := check(t, tlsa(t, 3, 1, 1, leaf))("mx1.example.test", peer()); tlsrpt.TypeOf(err) != tlsrpt.ValidationFailure {
		t.Errorf("no certificate: %v", err)
	}
}

func TestDANETA(t *testing.T) {
	ca := smtptest.NewCA(t, "mx1.example.test")
	leaf, root := parsePEM(t, ca.CertPEM), parsePEM(t, ca.CAPEM)
	for _, rec := range [][3]int{{2, 0, 1}, {2, 1, 1}, {2, 1, 2}, {2, 0, 0}, {2, 1, 0}} {
		c := check(t, tlsa(t, rec[0], rec[1], rec[2], root))
		if err := c("mx1.example.test", peer(leaf, root)); err != nil {
			t.Errorf("%v: certificate issued by the anchor refused: %v", rec, err)
		}
		// The name is checked against the MX host (and the domain).
		err := c("mx2.example.test", peer(leaf, root))
		var hostErr x509.HostnameError
		if !errors.As(err, &hostErr) || !strings.Contains(err.Error(), "DANE-TA") {
			t.Errorf("%v: wrong name: %v, want a host name error", rec, err)
		}
	}
	// A full certificate is an anchor by itself: the server may leave it out.
	if err := check(t, tlsa(t, 2, 0, 0, root))("mx1.example.test", peer(leaf)); err != nil {
		t.Errorf("2 0 0 with the anchor left out of the chain: %v", err)
	}
	// A digest needs the anchor in the chain (RFC 7672 3.1.2).
	if err := check(t, tlsa(t, 2, 0, 1, root))("mx1.example.test", peer(leaf)); tlsrpt.TypeOf(err) != tlsrpt.TLSAInvalid {
		t.Errorf("2 0 1 with the anchor left out: %v, want tlsa-invalid", err)
	}
	// Another CA's certificate does not chain to the anchor, even if the
	// server sends the anchor along.
	stranger := parsePEM(t, smtptest.NewCA(t, "mx1.example.test").CertPEM)
	var unknown x509.UnknownAuthorityError
	if err := check(t, tlsa(t, 2, 0, 1, root))("mx1.example.test", peer(stranger, root)); !errors.As(err, &unknown) {
		t.Errorf("a certificate of another CA: %v, want unknown authority", err)
	}

	// The recipient domain is a reference identifier too (RFC 7672 3.2.2).
	byDomain := smtptest.NewCA(t, "example.test")
	leaf, root = parsePEM(t, byDomain.CertPEM), parsePEM(t, byDomain.CAPEM)
	if err := check(t, tlsa(t, 2, 1, 1, root))("mx1.example.test", peer(leaf, root)); err != nil {
		t.Errorf("a certificate for the recipient domain: %v", err)
	}

	// A DANE-TA anchor does not excuse an expired server certificate.
	expired := selfSigned(t, "mx1.example.test", time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour))
	var invalid x509.CertificateInvalidError
	if err := check(t, tlsa(t, 2, 0, 1, expired))("mx1.example.test", peer(expired)); !errors.As(err, &invalid) || invalid.Reason != x509.Expired {
		t.Errorf("expired under DANE-TA: %v", err)
	}
}

// DANE and DANE-TA records together: either may authenticate the server.
func TestMixedRecords(t *testing.T) {
	ca := smtptest.NewCA(t, "mx1.example.test")
	leaf, root := parsePEM(t, ca.CertPEM), parsePEM(t, ca.CAPEM)
	stale := parsePEM(t, smtptest.NewCA(t, "mx1.example.test").CertPEM)
	c := check(t, tlsa(t, 3, 1, 1, stale), tlsa(t, 2, 1, 1, root))
	if err := c("mx1.example.test", peer(leaf, root)); err != nil {
		t.Errorf("the TA record should authenticate: %v", err)
	}
	if err := c("mx1.example.test", peer(stale)); err != nil {
		t.Errorf("the EE record should authenticate: %v", err)
	}
}

// DANE wins over MTA-STS for a host with secure TLSA records; the other
// hosts of the domain keep MTA-STS (RFC 8461 2).
func TestPrecedenceOverMTASTS(t *testing.T) {
	w := newWorld(t)
	leaf := parsePEM(t, smtptest.NewCA(t, "mx1.example.test").CertPEM)
	w.dns.RR(owner + " IN TLSA " + tlsa(t, 3, 1, 1, leaf))
	w.dns.SecureAll(true)
	p := &tlspolicy.Policies{
		Default: remote.Opportunistic,
		DANE:    w.policy.HostTLS,
		STS: func(context.Context, string) func(string) remote.HostTLS {
			return func(string) remote.HostTLS { return remote.HostTLS{Mode: remote.Verify, Name: "mta-sts"} }
		},
	}
	got := p.HostTLS(context.Background(), "example.test", []mx.Host{
		secureHost,
		{Name: "mx1.example.test"}, // the same host, reached through an unsigned MX: no DANE
		{Name: "mx2.example.test", Secure: true},
	})
	if got[0].Name != "dane" || got[1].Name != "mta-sts" || got[2].Name != "mta-sts" {
		t.Errorf("policies %q %q %q, want dane mta-sts mta-sts", got[0].Name, got[1].Name, got[2].Name)
	}
}

// selfSigned makes a certificate for name valid between the two times.
func selfSigned(t *testing.T, name string, notBefore, notAfter time.Time) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: notBefore, NotAfter: notAfter,
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
