package resolver

import (
	"context"
	"errors"
	"net"
	"slices"
	"testing"
	"time"

	"facteur/internal/smtptest"
)

func TestNewDefaultsPort(t *testing.T) {
	r, err := New("192.0.2.53", 0)
	if err != nil {
		t.Fatal(err)
	}
	if r.Server() != "192.0.2.53:53" {
		t.Errorf("server %q, want port 53", r.Server())
	}
}

func newResolver(t *testing.T) (*Resolver, *smtptest.DNSServer) {
	t.Helper()
	dns := smtptest.NewDNS(t)
	r, err := New(dns.Addr(), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return r, dns
}

// notFound tells whether err is what net.Resolver returns for a name without
// such records, which SPF and DKIM libraries read as "none", not "temperror".
func notFound(err error) bool {
	var e *net.DNSError
	return errors.As(err, &e) && e.IsNotFound && !e.IsTemporary
}

func TestLookupTXTJoinsStrings(t *testing.T) {
	r, dns := newResolver(t)
	dns.TXT("s1._domainkey.example.test", "v=DKIM1; k=ed25519; ", "p=abc")
	dns.TXT("example.test", "v=spf1 -all")
	dns.TXT("example.test", "other")

	got, err := r.LookupTXT(context.Background(), "s1._domainkey.example.test")
	if err != nil || !slices.Equal(got, []string{"v=DKIM1; k=ed25519; p=abc"}) {
		t.Errorf("LookupTXT = %q, %v", got, err)
	}
	got, err = r.LookupTXT(context.Background(), "example.test")
	slices.Sort(got)
	if err != nil || !slices.Equal(got, []string{"other", "v=spf1 -all"}) {
		t.Errorf("LookupTXT = %q, %v", got, err)
	}
}

func TestLookupErrorsAsNetResolver(t *testing.T) {
	r, dns := newResolver(t)
	dns.A("host.example.test", "192.0.2.1")
	dns.NXDomain("gone.example.test")
	dns.ServFail("broken.example.test")
	ctx := context.Background()

	if _, err := r.LookupTXT(ctx, "host.example.test"); !notFound(err) {
		t.Errorf("NODATA: %v, want not found", err)
	}
	if _, err := r.LookupTXT(ctx, "gone.example.test"); !notFound(err) {
		t.Errorf("NXDOMAIN: %v, want not found", err)
	}
	if _, err := r.LookupIPAddr(ctx, "gone.example.test"); !notFound(err) {
		t.Errorf("NXDOMAIN address: %v, want not found", err)
	}
	_, err := r.LookupTXT(ctx, "broken.example.test")
	var e *net.DNSError
	if !errors.As(err, &e) || !e.Temporary() || e.IsNotFound {
		t.Errorf("SERVFAIL: %v, want a temporary *net.DNSError", err)
	}
}

func TestLookupAddrAndIPAddr(t *testing.T) {
	r, dns := newResolver(t)
	dns.A("mx.example.test", "192.0.2.25")
	dns.AAAA("mx.example.test", "2001:db8::25")
	dns.PTR("192.0.2.25", "mx.example.test")
	dns.MX("example.test", 10, "mx.example.test")
	ctx := context.Background()

	names, err := r.LookupAddr(ctx, "192.0.2.25")
	if err != nil || !slices.Equal(names, []string{"mx.example.test."}) {
		t.Errorf("LookupAddr = %q, %v", names, err)
	}
	if _, err := r.LookupAddr(ctx, "2001:db8::25"); !notFound(err) {
		t.Errorf("LookupAddr without PTR: %v, want not found", err)
	}
	ips, err := r.LookupIPAddr(ctx, "mx.example.test")
	if err != nil || len(ips) != 2 || ips[0].IP.String() != "2001:db8::25" || ips[1].IP.String() != "192.0.2.25" {
		t.Errorf("LookupIPAddr = %v, %v", ips, err)
	}
	mxs, err := r.LookupMX(ctx, "example.test")
	if err != nil || len(mxs) != 1 || mxs[0].Host != "mx.example.test." || mxs[0].Pref != 10 {
		t.Errorf("LookupMX = %v, %v", mxs, err)
	}
}

func TestADBelievedOnlyFromLoopback(t *testing.T) {
	r, err := New("192.0.2.53", 0)
	if err != nil {
		t.Fatal(err)
	}
	if r.TrustsAD() {
		t.Error("the AD bit of a resolver across the network is believed")
	}
	r.TrustAD()
	if !r.TrustsAD() {
		t.Error("TrustAD did not make the resolver believed")
	}
	if r, _ := newResolver(t); !r.TrustsAD() {
		t.Error("the AD bit of a resolver on loopback is not believed")
	}
}

func TestLookupSecure(t *testing.T) {
	r, dns := newResolver(t)
	ctx := context.Background()
	dns.RR("_25._tcp.mx.signed.test. IN TLSA 3 1 1 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
	dns.Secure("_25._tcp.mx.signed.test", true)
	dns.Secure("gone.signed.test", true)
	dns.NXDomain("gone.signed.test")
	dns.A("mx.plain.test", "192.0.2.1")
	dns.CNAME("alias.signed.test", "mx.plain.test")
	dns.Secure("alias.signed.test", true)

	a, err := r.Lookup(ctx, "_25._tcp.mx.signed.test", 52) // TLSA
	if err != nil || len(a.RRs) != 1 || !a.Secure {
		t.Errorf("signed TLSA: %d records, secure %v, %v; want 1, true", len(a.RRs), a.Secure, err)
	}
	a, err = r.Lookup(ctx, "gone.signed.test", 52)
	if !errors.Is(err, ErrNXDomain) || !a.Secure {
		t.Errorf("signed NXDOMAIN: secure %v, %v; want a validated denial", a.Secure, err)
	}
	a, err = r.Lookup(ctx, "mx.plain.test", 1)
	if err != nil || len(a.RRs) != 1 || a.Secure {
		t.Errorf("unsigned A: %d records, secure %v, %v; want 1, false", len(a.RRs), a.Secure, err)
	}
	// A signed CNAME to an unsigned zone is not secure: every link counts.
	a, err = r.Lookup(ctx, "alias.signed.test", 1)
	if err != nil || len(a.RRs) != 1 || a.Secure {
		t.Errorf("signed CNAME to unsigned A: %d records, secure %v, %v; want 1, false", len(a.RRs), a.Secure, err)
	}
	// Addresses is secure only when both AAAA and A answers were.
	dns.A("mx.signed.test", "192.0.2.2")
	dns.Secure("mx.signed.test", true)
	if got, err := r.Addresses(ctx, "mx.signed.test"); err != nil || !got.Secure {
		t.Errorf("signed addresses: secure %v, %v", got.Secure, err)
	}
}
