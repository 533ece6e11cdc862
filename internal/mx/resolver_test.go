package mx

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"facteur/internal/resolver"
	"facteur/internal/smtptest"
)

func newResolver(t testing.TB, dns *smtptest.DNSServer, timeout time.Duration) *Resolver {
	t.Helper()
	res, err := resolver.New(dns.Addr(), timeout)
	if err != nil {
		t.Fatal(err)
	}
	return New(res)
}

func names(hosts []Host) []string {
	var out []string
	for _, h := range hosts {
		out = append(out, h.Name)
	}
	return out
}

// wantError checks that err is an *Error with the given class and code.
func wantError(t *testing.T, err error, permanent bool, enhanced string) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T), want *mx.Error", err, err)
	}
	if e.Permanent != permanent || e.Enhanced != enhanced {
		t.Errorf("error %q: permanent %v enhanced %s, want %v %s", e, e.Permanent, e.Enhanced, permanent, enhanced)
	}
}

func TestLookupPreferenceOrder(t *testing.T) {
	dns := smtptest.NewDNS(t)
	dns.MX("example.test", 20, "b.example.test")
	dns.MX("example.test", 10, "a.example.test")
	dns.MX("example.test", 30, "c.example.test")
	dns.A("a.example.test", "127.0.0.2")
	dns.AAAA("a.example.test", "::1")
	dns.A("b.example.test", "127.0.0.3")
	dns.A("c.example.test", "127.0.0.4")

	hosts, err := newResolver(t, dns, 0).Lookup(context.Background(), "Example.Test.")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := names(hosts), []string{"a.example.test", "b.example.test", "c.example.test"}; !slices.Equal(got, want) {
		t.Errorf("hosts %v, want %v", got, want)
	}
	want := []netip.Addr{netip.MustParseAddr("::1"), netip.MustParseAddr("127.0.0.2")}
	if !slices.Equal(hosts[0].Addrs, want) {
		t.Errorf("addresses of a: %v, want AAAA then A %v", hosts[0].Addrs, want)
	}
	if hosts[0].Pref != 10 || hosts[2].Pref != 30 {
		t.Errorf("preferences %d..%d", hosts[0].Pref, hosts[2].Pref)
	}
}

func TestLookupShufflesEqualPreference(t *testing.T) {
	dns := smtptest.NewDNS(t)
	dns.MX("example.test", 10, "a.example.test")
	dns.MX("example.test", 10, "b.example.test")
	dns.MX("example.test", 20, "backup.example.test")
	for _, h := range []string{"a", "b", "backup"} {
		dns.A(h+".example.test", "127.0.0.2")
	}
	r := newResolver(t, dns, 0)
	seen := map[string]bool{}
	// Each order has probability 1/2 per call: 200 calls miss one with
	// probability 2^-199.
	for i := 0; i < 200 && len(seen) < 2; i++ {
		hosts, err := r.Lookup(context.Background(), "example.test")
		if err != nil {
			t.Fatal(err)
		}
		if hosts[2].Name != "backup.example.test" {
			t.Fatalf("backup not last: %v", names(hosts))
		}
		seen[hosts[0].Name] = true
	}
	if len(seen) != 2 {
		t.Errorf("only %v ever came first", seen)
	}
}

func TestLookupImplicitMX(t *testing.T) {
	dns := smtptest.NewDNS(t)
	dns.A("example.test", "127.0.0.2")
	dns.AAAA("example.test", "::1")
	hosts, err := newResolver(t, dns, 0).Lookup(context.Background(), "example.test")
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Addr{netip.MustParseAddr("::1"), netip.MustParseAddr("127.0.0.2")}
	if len(hosts) != 1 || hosts[0].Name != "example.test" || !slices.Equal(hosts[0].Addrs, want) {
		t.Errorf("hosts %+v, want example.test %v", hosts, want)
	}
}

func TestLookupFailures(t *testing.T) {
	dns := smtptest.NewDNS(t)
	dns.NullMX("null.test")
	dns.NXDomain("gone.test")
	dns.ServFail("broken.test")
	dns.Timeout("slow.test")
	dns.MX("noaddr.test", 10, "nowhere.noaddr.test")
	dns.MX("nxhost.test", 10, "gone.test")
	dns.A("nxhost.test", "127.0.0.2") // an implicit MX must not be used when MX exist
	r := newResolver(t, dns, 100*time.Millisecond)

	for _, tc := range []struct {
		domain    string
		permanent bool
		enhanced  string
	}{
		{"null.test", true, "5.1.10"},
		{"gone.test", true, "5.1.2"},
		{"empty.test", true, "5.1.2"}, // neither MX nor address
		{"broken.test", false, "4.4.3"},
		{"slow.test", false, "4.4.3"},
		{"noaddr.test", false, "4.4.3"},
		{"nxhost.test", false, "4.4.3"},
		{"[not an address]", true, "5.1.2"},
		{"[IPv6:192.0.2.1]", true, "5.1.2"},
	} {
		t.Run(tc.domain, func(t *testing.T) {
			hosts, err := r.Lookup(context.Background(), tc.domain)
			if err == nil {
				t.Fatalf("got hosts %+v, want an error", hosts)
			}
			wantError(t, err, tc.permanent, tc.enhanced)
		})
	}
}

func TestLookupNullMXAmongOthers(t *testing.T) {
	dns := smtptest.NewDNS(t)
	dns.NullMX("example.test")
	dns.MX("example.test", 10, "mx.example.test")
	dns.A("mx.example.test", "127.0.0.2")
	hosts, err := newResolver(t, dns, 0).Lookup(context.Background(), "example.test")
	if err != nil || len(hosts) != 1 || hosts[0].Name != "mx.example.test" {
		t.Errorf("got %+v, %v; want only the real MX", hosts, err)
	}
}

func TestLookupSkipsHostWithoutAddress(t *testing.T) {
	dns := smtptest.NewDNS(t)
	dns.MX("example.test", 10, "dead.example.test")
	dns.MX("example.test", 20, "live.example.test")
	dns.ServFail("dead.example.test")
	dns.A("live.example.test", "127.0.0.3")
	hosts, err := newResolver(t, dns, 0).Lookup(context.Background(), "example.test")
	if err != nil || !slices.Equal(names(hosts), []string{"live.example.test"}) {
		t.Errorf("got %v, %v; want only live.example.test", names(hosts), err)
	}
}

func TestLookupFollowsCNAME(t *testing.T) {
	dns := smtptest.NewDNS(t)
	dns.CNAME("example.test", "alias.test")
	dns.CNAME("alias.test", "real.test")
	dns.MX("real.test", 10, "mx.example.test")
	dns.CNAME("mx.example.test", "host.real.test")
	dns.A("host.real.test", "127.0.0.2")
	hosts, err := newResolver(t, dns, 0).Lookup(context.Background(), "example.test")
	if err != nil {
		t.Fatal(err)
	}
	if len(hosts) != 1 || hosts[0].Name != "mx.example.test" || hosts[0].Addrs[0] != netip.MustParseAddr("127.0.0.2") {
		t.Errorf("hosts %+v", hosts)
	}
}

func TestLookupCNAMELoop(t *testing.T) {
	dns := smtptest.NewDNS(t)
	dns.CNAME("a.test", "b.test")
	dns.CNAME("b.test", "a.test")
	_, err := newResolver(t, dns, 0).Lookup(context.Background(), "a.test")
	wantError(t, err, false, "4.4.3")
}

func TestLookupTruncatedFallsBackToTCP(t *testing.T) {
	dns := smtptest.NewDNS(t)
	dns.MX("example.test", 10, "big.example.test")
	for i := range 200 {
		dns.A("big.example.test", fmt.Sprintf("127.0.%d.%d", i/250, 1+i%250))
	}
	hosts, err := newResolver(t, dns, 0).Lookup(context.Background(), "example.test")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(hosts[0].Addrs); n != 200 {
		t.Errorf("%d addresses, want all 200", n)
	}
}

func TestLookupCachesOnlySuccess(t *testing.T) {
	dns := smtptest.NewDNS(t)
	dns.MX("example.test", 10, "mx.example.test")
	dns.A("mx.example.test", "127.0.0.2")
	dns.ServFail("broken.test")
	r := newResolver(t, dns, 0)
	ctx := context.Background()
	for range 3 {
		if _, err := r.Lookup(ctx, "example.test"); err != nil {
			t.Fatal(err)
		}
		r.Lookup(ctx, "broken.test")
	}
	if n := dns.Queries("example.test"); n != 1 {
		t.Errorf("example.test queried %d times, want 1 (cached)", n)
	}
	if n := dns.Queries("broken.test"); n != 3 {
		t.Errorf("broken.test queried %d times, want 3 (failures not cached)", n)
	}
}

func TestLookupLiteral(t *testing.T) {
	r := &Resolver{} // literals never reach DNS
	for lit, want := range map[string]string{
		"[127.0.0.2]":        "127.0.0.2",
		"[IPv6:::1]":         "::1",
		"[ipv6:2001:db8::1]": "2001:db8::1",
	} {
		hosts, err := r.Lookup(context.Background(), lit)
		if err != nil || len(hosts) != 1 || hosts[0].Addrs[0] != netip.MustParseAddr(want) {
			t.Errorf("Lookup(%s) = %+v, %v; want %s", lit, hosts, err, want)
		}
	}
}

func BenchmarkLookupCached(b *testing.B) {
	dns := smtptest.NewDNS(b)
	dns.MX("example.test", 10, "a.example.test")
	dns.MX("example.test", 10, "b.example.test")
	dns.A("a.example.test", "127.0.0.2")
	dns.A("b.example.test", "127.0.0.3")
	r := newResolver(b, dns, 0)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Lookup(ctx, "example.test"); err != nil {
			b.Fatal(err)
		}
	}
}

func TestLookupSecureHosts(t *testing.T) {
	dns := smtptest.NewDNS(t)
	r := newResolver(t, dns, 2*time.Second)
	ctx := context.Background()
	dns.SecureAll(true)
	dns.MX("signed.test", 10, "mx1.signed.test")
	dns.MX("signed.test", 20, "mx.unsigned.test")
	dns.A("mx1.signed.test", "192.0.2.1")
	dns.A("mx.unsigned.test", "192.0.2.2")
	dns.Secure("mx.unsigned.test", false)
	dns.A("implicit.test", "192.0.2.3")
	dns.MX("plain.test", 10, "mx1.signed.test")
	dns.Secure("plain.test", false)

	hosts, err := r.Lookup(ctx, "signed.test")
	if err != nil || len(hosts) != 2 {
		t.Fatalf("Lookup = %v, %v", hosts, err)
	}
	if !hosts[0].Secure || hosts[1].Secure {
		t.Errorf("secure = %v, %v; want true for the signed host, false for the unsigned one", hosts[0].Secure, hosts[1].Secure)
	}
	if hosts, err := r.Lookup(ctx, "implicit.test"); err != nil || !hosts[0].Secure {
		t.Errorf("implicit MX of a signed domain: %v, %v; want secure", hosts, err)
	}
	// An unsigned MX names hosts an attacker may have chosen: no DANE for
	// them, however signed their own zone is.
	if hosts, err := r.Lookup(ctx, "plain.test"); err != nil || hosts[0].Secure {
		t.Errorf("host of an unsigned MX: %v, %v; want not secure", hosts, err)
	}
}
