package dnssetup

import (
	"fmt"
	"io"
	"net/netip"
	"strings"

	"github.com/miekg/dns"

	"facteur/internal/dkim"
	"facteur/internal/tlsrpt"
	"facteur/internal/zone"
)

// Record is one record to publish and the comment that says why. Line is
// a zone-file line, or empty when facteur cannot know the record, and the
// comment then says what to put.
type Record struct {
	Comment string
	Line    string
}

// Section is the records of the mail host or of one domain.
type Section struct {
	Title   string
	Records []Record
}

// Records lists what the operator publishes: the host's addresses and
// reverse DNS, then each domain's MX, SPF, DKIM, DMARC, TLSRPT and MTA-STS
// records.
func (s *Setup) Records(domains []string) []Section {
	host := Section{Title: s.Hostname + ": the mail host, named in HELO and by the MX records"}
	host.Records = append(s.addrRecords(), s.ptrRecords()...)
	host.Records = append(host.Records, s.tlsaRecord())
	out := []Section{host}
	published := map[string]bool{} // a parent's key serves several domains
	for _, d := range domains {
		sec := Section{Title: d}
		sec.Records = append(sec.Records, s.mxRecord(d), s.spfRecord(d))
		keys := s.keysFor(d)
		if len(keys) == 0 {
			sec.Records = append(sec.Records, Record{Comment: fmt.Sprintf(
				"DKIM: no key signs mail from %s yet: run 'facteur dkim keygen --domain %s', then 'facteur dns records' again", d, d)})
		}
		for _, k := range keys {
			if published[k.Name()] {
				sec.Records = append(sec.Records, Record{Comment: fmt.Sprintf("DKIM: mail from %s is signed with the key at %s, above", d, k.Name())})
				continue
			}
			published[k.Name()] = true
			sec.Records = append(sec.Records, dkimRecord(k, d))
		}
		sec.Records = append(sec.Records, dmarcRecord(d), tlsrptRecord(d))
		sec.Records = append(sec.Records, s.stsRecords(d)...)
		out = append(out, sec)
	}
	return out
}

// Write prints sections in zone-file form, each record after its comment
// (each line of which starts with "; ").
func Write(w io.Writer, sections []Section) error {
	var b strings.Builder
	for i, sec := range sections {
		if i > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "; %s\n", sec.Title)
		for _, r := range sec.Records {
			fmt.Fprintf(&b, "; %s\n", strings.ReplaceAll(r.Comment, "\n", "\n; "))
			if r.Line != "" {
				fmt.Fprintf(&b, "%s\n", r.Line)
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// whyUnknown says why the listeners do not give this host's public
// addresses.
func (s *Setup) whyUnknown() string {
	if len(s.Unspecified) > 0 {
		return "facteur listens on " + strings.Join(s.Unspecified, ", ") + ", which names no address"
	}
	if len(s.Addrs) == 0 {
		return "facteur has no smtp or smtps listener"
	}
	return "facteur listens on " + joinAddrs(s.Addrs) + ", which the Internet cannot reach (NAT or loopback)"
}

func (s *Setup) addrRecords() []Record {
	pub := s.publicAddrs()
	if len(pub) == 0 {
		return []Record{{Comment: fmt.Sprintf("%s IN A <this host's public IPv4 address>, and IN AAAA <its IPv6 address> if it has one: %s",
			zone.Fqdn(s.Hostname), s.whyUnknown())}}
	}
	var out []Record
	for _, a := range pub {
		out = append(out, Record{
			Comment: fmt.Sprintf("address of %s, where facteur listens for mail", s.Hostname),
			Line:    addrLine(s.Hostname, a),
		})
	}
	return out
}

func addrLine(host string, a netip.Addr) string {
	if a.Is4() {
		return fmt.Sprintf("%s IN A %s", zone.Fqdn(host), a)
	}
	return fmt.Sprintf("%s IN AAAA %s", zone.Fqdn(host), a)
}

func (s *Setup) ptrRecords() []Record {
	pub := s.publicAddrs()
	if len(pub) == 0 {
		return []Record{{Comment: fmt.Sprintf(
			"reverse DNS: whoever owns this host's public addresses (the hosting provider's panel) must make their PTR records name %s", s.Hostname)}}
	}
	var out []Record
	for _, a := range pub {
		out = append(out, s.ptrRecord(a))
	}
	return out
}

// ptrRecord is the reverse record a sending address needs: receivers
// check that it names the HELO host and that this name has the address.
func (s *Setup) ptrRecord(a netip.Addr) Record {
	rev, _ := dns.ReverseAddr(a.String()) // a is a valid address
	return Record{
		Comment: fmt.Sprintf("reverse DNS of %s, set by whoever owns the address (the hosting provider's panel), not in your zone", a),
		Line:    fmt.Sprintf("%s IN PTR %s", rev, zone.Fqdn(s.Hostname)),
	}
}

func (s *Setup) mxRecord(domain string) Record {
	return Record{
		Comment: fmt.Sprintf("mail for %s goes to facteur", domain),
		Line:    fmt.Sprintf("%s IN MX 10 %s", zone.Fqdn(domain), zone.Fqdn(s.Hostname)),
	}
}

// spfRecord names facteur's addresses when the listeners give all of
// them, else the hosts of the domain's MX records, which are facteur's.
func (s *Setup) spfRecord(domain string) Record {
	if !s.addrsKnown() {
		return Record{
			Comment: fmt.Sprintf("SPF: only the hosts of %s's MX records send its mail", domain),
			Line:    zone.TXT(domain, "v=spf1 mx -all"),
		}
	}
	mechs := []string{"v=spf1"}
	for _, a := range s.publicAddrs() {
		if a.Is4() {
			mechs = append(mechs, "ip4:"+a.String())
		} else {
			mechs = append(mechs, "ip6:"+a.String())
		}
	}
	return Record{
		Comment: fmt.Sprintf("SPF: only facteur's addresses send mail from %s", domain),
		Line:    zone.TXT(domain, strings.Join(append(mechs, "-all"), " ")),
	}
}

func dkimRecord(k *dkim.Key, domain string) Record {
	whose := ""
	if k.Domain != domain {
		whose = fmt.Sprintf(", which signs the mail of %s too", domain)
	}
	return Record{
		Comment: fmt.Sprintf("DKIM: public part of the %s key %s of %s (%s)%s", keyDesc(k), k.Selector, k.Domain, k.File, whose),
		Line:    zone.TXT(k.Name(), k.Record()),
	}
}

func keyDesc(k *dkim.Key) string {
	if k.Algorithm() == "rsa" {
		return fmt.Sprintf("%d-bit RSA", k.Bits())
	}
	return "Ed25519"
}

func dmarcRecord(domain string) Record {
	return Record{
		Comment: fmt.Sprintf("DMARC: receivers reject mail from %s that neither DKIM nor SPF authenticates; "+
			"to start carefully, publish p=none (reports only) or p=quarantine (to Junk) first, "+
			"and p=reject once the reports to postmaster@%s are clean", domain, domain),
		Line: zone.TXT("_dmarc."+domain, "v=DMARC1; p=reject; rua=mailto:postmaster@"+domain),
	}
}

// tlsrptRecord asks the servers that send to domain for their daily TLS
// reports (RFC 8460), at postmaster, which every domain has.
func tlsrptRecord(domain string) Record {
	return Record{
		Comment: fmt.Sprintf("TLS reports: servers that send mail to %s report daily how many sessions with facteur were secured "+
			"and why the others failed (RFC 8460), to postmaster@%s; any address will do (an alias, a dedicated mailbox)", domain, domain),
		Line: zone.TXT(tlsrpt.RecordName(domain), "v=TLSRPTv1; rua=mailto:postmaster@"+domain),
	}
}

func joinAddrs(as []netip.Addr) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return strings.Join(s, ", ")
}
