package tlspolicy

import (
	"context"
	"testing"

	"facteur/internal/mx"
	"facteur/internal/remote"
	"facteur/internal/tlsrpt"
)

func TestOrder(t *testing.T) {
	p := &Policies{
		Default: remote.Opportunistic,
		DANE: func(_ context.Context, _ string, h mx.Host) (remote.HostTLS, bool) {
			return remote.HostTLS{Mode: remote.Required, Name: "dane"}, h.Name == "tlsa.test"
		},
		STS: func(_ context.Context, domain string) func(string) remote.HostTLS {
			if domain != "sts.test" {
				return nil
			}
			return func(string) remote.HostTLS { return remote.HostTLS{Mode: remote.Verify, Name: "mta-sts"} }
		},
	}
	hosts := []mx.Host{
		{Name: "tlsa.test", Secure: true},  // DANE wins over MTA-STS
		{Name: "tlsa.test", Secure: false}, // no DANE without DNSSEC
		{Name: "other.test", Secure: true}, // no TLSA: MTA-STS
	}
	got := p.HostTLS(context.Background(), "sts.test", hosts)
	if got[0].Name != "dane" || got[1].Name != "mta-sts" || got[2].Name != "mta-sts" {
		t.Errorf("sts.test: %q %q %q, want dane mta-sts mta-sts", got[0].Name, got[1].Name, got[2].Name)
	}
	got = p.HostTLS(context.Background(), "plain.test", hosts[1:])
	for _, ht := range got {
		if ht.Mode != remote.Opportunistic || ht.Report.Type != tlsrpt.NoPolicy || ht.Report.Domain != "plain.test" {
			t.Errorf("plain.test: %+v, want the default, no policy found", ht)
		}
	}
}
