package mx

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"

	"facteur/internal/resolver"
)

// Resolver looks up MX hosts through facteur's resolver and remembers
// positive answers for their TTL, so the relay's hot path does not query DNS
// for every message. It is safe for concurrent use.
type Resolver struct {
	dns   *resolver.Resolver
	cache *cache
}

// New returns a Resolver asking res.
func New(res *resolver.Resolver) *Resolver {
	return &Resolver{dns: res, cache: newCache(maxCacheEntries)}
}

// Lookup returns the hosts to try for domain, best first: MX hosts by
// preference, in random order among equal preferences so that load spreads;
// or the domain itself when it has no MX (implicit MX, RFC 5321 5.1). A
// failure is an *Error saying whether it is permanent. Hosts without any
// address are left out.
func (r *Resolver) Lookup(ctx context.Context, domain string) ([]Host, error) {
	if strings.HasPrefix(domain, "[") {
		return literal(domain)
	}
	name := strings.ToLower(strings.TrimSuffix(domain, "."))
	if name == "" {
		return nil, permanent(domain, "5.1.2", "empty domain")
	}
	if hosts, ok := r.cache.get(name, time.Now()); ok {
		return shuffle(hosts), nil
	}
	hosts, ttl, err := r.resolve(ctx, name)
	if err != nil {
		return nil, err
	}
	r.cache.put(name, hosts, time.Now().Add(time.Duration(ttl)*time.Second))
	return shuffle(hosts), nil
}

// resolve does the DNS work of Lookup: hosts sorted by preference, and the
// smallest TTL of every record used.
func (r *Resolver) resolve(ctx context.Context, name string) ([]Host, uint32, error) {
	ans, err := r.dns.Lookup(ctx, name, dns.TypeMX)
	rrs, ttl := ans.RRs, ans.TTL
	if errors.Is(err, resolver.ErrNXDomain) {
		return nil, 0, permanent(name, "5.1.2", "domain does not exist")
	}
	if err != nil {
		return nil, 0, transient(name, "MX lookup failed: "+err.Error())
	}
	if len(rrs) == 0 {
		return r.implicit(ctx, name, ans.Secure)
	}
	mxs := make([]*dns.MX, 0, len(rrs))
	for _, rr := range rrs {
		// A null MX mixed with real ones is a misconfiguration; RFC 7505
		// leaves it to us, and the real ones are the useful part.
		if m := rr.(*dns.MX); m.Mx != "." {
			mxs = append(mxs, m)
		}
	}
	if len(mxs) == 0 {
		return nil, 0, permanent(name, "5.1.10", "domain accepts no mail (null MX)")
	}
	slices.SortStableFunc(mxs, func(a, b *dns.MX) int { return int(a.Preference) - int(b.Preference) })

	var hosts []Host
	var lastErr error
	for _, m := range mxs {
		a, err := r.dns.Addresses(ctx, m.Mx)
		if err != nil {
			lastErr = err
			continue
		}
		if len(a.Addrs) == 0 {
			lastErr = fmt.Errorf("%s has no address", m.Mx)
			continue
		}
		ttl = min(ttl, a.TTL)
		hosts = append(hosts, Host{Name: strings.TrimSuffix(m.Mx, "."), Pref: m.Preference,
			Addrs: slices.Clip(a.Addrs), Secure: ans.Secure && a.Secure})
	}
	if len(hosts) == 0 {
		return nil, 0, transient(name, "no MX host has an address: "+lastErr.Error())
	}
	return hosts, ttl, nil
}

// implicit handles a domain without MX: mail goes to the domain's own address.
func (r *Resolver) implicit(ctx context.Context, name string, mxSecure bool) ([]Host, uint32, error) {
	a, err := r.dns.Addresses(ctx, name)
	if errors.Is(err, resolver.ErrNXDomain) {
		return nil, 0, permanent(name, "5.1.2", "domain does not exist")
	}
	if err != nil {
		return nil, 0, transient(name, "address lookup failed: "+err.Error())
	}
	if len(a.Addrs) == 0 {
		return nil, 0, permanent(name, "5.1.2", "no MX and no address")
	}
	// The MX NODATA that led here was validated with the addresses only if
	// mxSecure says so.
	return []Host{{Name: name, Addrs: slices.Clip(a.Addrs), Secure: mxSecure && a.Secure}}, a.TTL, nil
}

// shuffle returns a copy of hosts (sorted by preference) with each run of
// equal preference in random order.
func shuffle(hosts []Host) []Host {
	out := slices.Clone(hosts)
	for i := 0; i < len(out); {
		j := i + 1
		for j < len(out) && out[j].Pref == out[i].Pref {
			j++
		}
		run := out[i:j]
		rand.Shuffle(len(run), func(a, b int) { run[a], run[b] = run[b], run[a] })
		i = j
	}
	return out
}
