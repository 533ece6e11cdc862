package dnsbl

import (
	"net/netip"
	"strings"
	"testing"

	"facteur/internal/resolver"
	"facteur/internal/smtptest"
)

func TestName(t *testing.T) {
	for _, c := range []struct{ ip, want string }{
		{"192.0.2.99", "99.2.0.192.zen.example"},
		{"::ffff:192.0.2.99", "99.2.0.192.zen.example"},
		// RFC 5782 2.4's example.
		{"2001:db8:1:2:3:4:567:89ab", "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.zen.example"},
	} {
		if got := Name(netip.MustParseAddr(c.ip), "zen.example."); got != c.want {
			t.Errorf("Name(%s) = %s, want %s", c.ip, got, c.want)
		}
	}
}

func lists(t *testing.T, zones ...string) (*Lists, *smtptest.DNSServer) {
	t.Helper()
	srv := smtptest.NewDNS(t)
	r, err := resolver.New(srv.Addr(), 0)
	if err != nil {
		t.Fatal(err)
	}
	return New(r, zones), srv
}

func TestCheck(t *testing.T) {
	l, dns := lists(t, "one.example", "two.example")
	dns.A("2.0.0.127.two.example", "127.0.0.2")
	dns.A("3.0.0.127.one.example", "127.0.0.4")
	dns.A("3.0.0.127.two.example", "127.0.0.10")
	dns.A("4.0.0.127.one.example", "127.255.255.254")
	dns.ServFail("5.0.0.127.one.example")
	dns.A("6.0.0.127.one.example", "198.51.100.7")
	dns.NXDomain("7.0.0.127.one.example")
	dns.A("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.one.example", "127.0.0.3")

	for _, c := range []struct {
		ip, result, zone, code, problem string
	}{
		{ip: "127.0.0.1", result: "clean"},
		{ip: "127.0.0.7", result: "clean"},
		{ip: "127.0.0.2", result: "listed", zone: "two.example", code: "127.0.0.2"},
		// Both list it: the first zone of the configuration names it.
		{ip: "127.0.0.3", result: "listed", zone: "one.example", code: "127.0.0.4"},
		{ip: "127.0.0.4", result: "error", problem: "error code 127.255.255.254"},
		{ip: "127.0.0.5", result: "error", problem: "SERVFAIL"},
		{ip: "127.0.0.6", result: "error", problem: "outside 127.0.0.0/8"},
		{ip: "2001:db8::1", result: "listed", zone: "one.example", code: "127.0.0.3"},
		{ip: "2001:db8::2", result: "clean"},
	} {
		v := l.Check(t.Context(), netip.MustParseAddr(c.ip))
		if v.Result() != c.result {
			t.Errorf("%s: %s (%+v), want %s", c.ip, v.Result(), v, c.result)
			continue
		}
		if c.zone != "" && (v.Listed.Zone != c.zone || v.Listed.Code.String() != c.code) {
			t.Errorf("%s: listed at %s with %s, want %s with %s", c.ip, v.Listed.Zone, v.Listed.Code, c.zone, c.code)
		}
		if c.problem != "" && (len(v.Problems) != 1 || !strings.Contains(v.Problems[0].Error(), c.problem)) {
			t.Errorf("%s: problems %v, want one saying %q", c.ip, v.Problems, c.problem)
		}
		if c.problem == "" && len(v.Problems) > 0 {
			t.Errorf("%s: problems %v", c.ip, v.Problems)
		}
	}
}

func TestNoZones(t *testing.T) {
	if l := New(nil, nil); l != nil {
		t.Errorf("New without zones = %v, want nil", l)
	}
}
