package tlsrpt

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// RecordName is where domain publishes its TLSRPT record (RFC 8460 3).
func RecordName(domain string) string { return "_smtp._tls." + domain }

// Record is a domain's TLSRPT record: where it wants its reports.
type Record struct {
	Mailto []string // the addresses of the mailto: URIs
	Other  []string // the other URIs (https:), which facteur does not post to
}

// ErrNoRecord: the domain asks for no reports.
var ErrNoRecord = errors.New("no TLSRPT record")

// FindRecord picks the TLSRPT record among a name's TXT records (each
// one's strings joined) and parses it. RFC 8460 3: the records that do
// not start with the version are ignored, and unless exactly one is left
// the domain asks for no reports: ErrNoRecord when none is, an error that
// says so when there are several.
func FindRecord(txts []string) (*Record, error) {
	var found []string
	for _, t := range txts {
		if v, _, _ := strings.Cut(t, ";"); strings.TrimSpace(v) == "v=TLSRPTv1" {
			found = append(found, t)
		}
	}
	switch len(found) {
	case 0:
		return nil, ErrNoRecord
	case 1:
		return ParseRecord(found[0])
	}
	return nil, fmt.Errorf("%d TLSRPT records, where one is allowed", len(found))
}

// ParseRecord reads "v=TLSRPTv1; rua=mailto:a@example.org,https://...".
func ParseRecord(s string) (*Record, error) {
	fields := strings.Split(s, ";")
	if strings.TrimSpace(fields[0]) != "v=TLSRPTv1" {
		return nil, fmt.Errorf("TLSRPT record %q: does not start with v=TLSRPTv1", s)
	}
	rec := &Record{}
	seen := false
	for _, f := range fields[1:] {
		f = strings.TrimSpace(f)
		uris, ok := strings.CutPrefix(f, "rua=")
		if !ok {
			continue // an extension, or the empty field after a final ";"
		}
		if seen {
			return nil, fmt.Errorf("TLSRPT record %q: two rua fields", s)
		}
		seen = true
		for _, u := range strings.Split(uris, ",") {
			if err := rec.add(strings.TrimSpace(u)); err != nil {
				return nil, fmt.Errorf("TLSRPT record %q: %w", s, err)
			}
		}
	}
	if !seen {
		return nil, fmt.Errorf("TLSRPT record %q: no rua field", s)
	}
	return rec, nil
}

func (r *Record) add(uri string) error {
	u, err := url.Parse(uri)
	if err != nil || u.Scheme == "" {
		return fmt.Errorf("rua %q is no URI", uri)
	}
	if !strings.EqualFold(u.Scheme, "mailto") {
		r.Other = append(r.Other, uri)
		return nil
	}
	// mailto:a@b?subject=..., commas and "!" percent-encoded (RFC 6068).
	addr, err := url.PathUnescape(u.Opaque)
	if at := strings.LastIndexByte(addr, '@'); err != nil || at < 1 || at == len(addr)-1 || strings.ContainsAny(addr, "<>, \t") {
		return fmt.Errorf("rua %q: no single address", uri)
	}
	r.Mailto = append(r.Mailto, addr)
	return nil
}
