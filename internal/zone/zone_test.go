package zone

import (
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// TestTXTReadsBackAsWritten parses each line with miekg/dns, as a DNS
// server loading the zone would, and joins the strings as verifiers do.
func TestTXTReadsBackAsWritten(t *testing.T) {
	for _, value := range []string{
		"v=spf1 mx -all",
		strings.Repeat("a", 255),
		"v=DKIM1; k=rsa; p=" + strings.Repeat("B", 392),
		strings.Repeat("x", 600),
	} {
		line := TXT("s._domainkey.example.org", value)
		rr, err := dns.NewRR(line)
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		txt := rr.(*dns.TXT)
		for _, s := range txt.Txt {
			if len(s) > 255 {
				t.Errorf("%s: a string of %d octets", line, len(s))
			}
		}
		if got := strings.Join(txt.Txt, ""); got != value || txt.Hdr.Name != "s._domainkey.example.org." {
			t.Errorf("%s read back as %s %q", line, txt.Hdr.Name, got)
		}
	}
}
