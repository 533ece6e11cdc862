// Package mtasts applies the MTA-STS policies of recipient domains (RFC
// 8461): a TXT record at _mta-sts.<domain> announces a policy, served over
// HTTPS at https://mta-sts.<domain>/.well-known/mta-sts.txt, that names the
// MX hosts allowed to receive the domain's mail and asks for TLS with a
// valid certificate to them. Policies are cached on disk and in memory, so
// that an attacker who blocks the fetch later cannot undo them (RFC 8461 5.1),
// and so that delivery costs no HTTPS request once a policy is known.
package mtasts

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Mode is what a policy asks of senders (RFC 8461 5).
type Mode string

const (
	// Enforce: deliver only to the MX hosts named, over TLS with a
	// certificate valid for the host.
	Enforce Mode = "enforce"
	// Testing: deliver as without a policy, and report what enforce would
	// have refused.
	Testing Mode = "testing"
	// None: the domain withdraws its policy.
	None Mode = "none"
)

// MaxMaxAge caps max_age (RFC 8461 3.2: about one year).
const MaxMaxAge = 31557600 * time.Second

// Policy is a domain's parsed policy file.
type Policy struct {
	Mode   Mode
	MX     []string // patterns, lower case: "mx.example.net" or "*.example.net"
	MaxAge time.Duration
	// Text is the policy file as served, for the cache and TLS reports.
	Text string
}

// Parse reads a policy file (RFC 8461 3.2): "key: value" lines, CRLF or LF,
// with version STSv1, a mode, a max_age and, unless the mode is none, at
// least one mx. Unknown keys are ignored, as the RFC asks.
func Parse(text string) (*Policy, error) {
	p := &Policy{Text: text}
	seen := map[string]bool{}
	for line := range strings.SplitSeq(text, "\n") {
		line = strings.TrimSuffix(line, "\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		key, value, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("policy line %q is not \"key: value\"", line)
		}
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		if key != "mx" && seen[key] {
			return nil, fmt.Errorf("policy has %s twice", key)
		}
		seen[key] = true
		switch key {
		case "version":
			if value != "STSv1" {
				return nil, fmt.Errorf("policy version %q, want STSv1", value)
			}
		case "mode":
			switch m := Mode(value); m {
			case Enforce, Testing, None:
				p.Mode = m
			default:
				return nil, fmt.Errorf("policy mode %q, want enforce, testing or none", value)
			}
		case "max_age":
			// At most 10 digits (RFC 8461 3.2).
			n, err := strconv.ParseUint(value, 10, 64)
			if err != nil || len(value) > 10 {
				return nil, fmt.Errorf("policy max_age %q is not a number of seconds", value)
			}
			p.MaxAge = time.Duration(min(n, uint64(MaxMaxAge/time.Second))) * time.Second
		case "mx":
			pat := strings.ToLower(strings.TrimSuffix(value, "."))
			if err := checkPattern(pat); err != nil {
				return nil, err
			}
			p.MX = append(p.MX, pat)
		}
	}
	for _, key := range []string{"version", "mode", "max_age"} {
		if !seen[key] {
			return nil, fmt.Errorf("policy has no %s", key)
		}
	}
	if p.Mode != None && len(p.MX) == 0 {
		return nil, errors.New("policy names no mx")
	}
	return p, nil
}

// checkPattern accepts a host name, or "*." and a host name.
func checkPattern(pat string) error {
	name := strings.TrimPrefix(pat, "*.")
	if name == "" || strings.Contains(name, "*") || strings.Contains(name, "..") || strings.HasPrefix(name, ".") {
		return fmt.Errorf("policy mx %q is not a host name or *.host name", pat)
	}
	return nil
}

// Matches reports whether host (an MX host name) is one the policy names. A
// pattern "*.example.net" stands for exactly one more label (RFC 8461 4.1).
func (p *Policy) Matches(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, pat := range p.MX {
		if rest, ok := strings.CutPrefix(pat, "*."); ok {
			label, parent, found := strings.Cut(host, ".")
			if found && label != "" && parent == rest {
				return true
			}
		} else if host == pat {
			return true
		}
	}
	return false
}

// Lines are the policy's non-empty lines, the "policy-string" of a TLS
// report (RFC 8460 4.4).
func (p *Policy) Lines() []string {
	var out []string
	for line := range strings.SplitSeq(p.Text, "\n") {
		if line = strings.TrimSpace(line); line != "" {
			out = append(out, line)
		}
	}
	return out
}

// ParseRecord reads the TXT records at _mta-sts.<domain> (RFC 8461 3.1) and
// returns the policy id they announce. Records not starting with
// "v=STSv1;" are someone else's; anything but exactly one valid record
// means the domain announces no policy (ok false).
func ParseRecord(txts []string) (id string, ok bool) {
	var recs []string
	for _, t := range txts {
		if strings.HasPrefix(t, "v=STSv1;") || t == "v=STSv1" {
			recs = append(recs, t)
		}
	}
	if len(recs) != 1 {
		return "", false
	}
	for field := range strings.SplitSeq(recs[0], ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(field), "=")
		if k == "id" && validID(v) {
			id = v
		}
	}
	return id, id != ""
}

// validID: 1 to 32 letters and digits (RFC 8461 3.1).
func validID(id string) bool {
	if id == "" || len(id) > 32 {
		return false
	}
	for _, c := range id {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}
