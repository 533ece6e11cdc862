package mtasts

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/idna"

	"facteur/internal/durable"
	"facteur/internal/resolver"
)

// How long what was learnt about a domain is believed before asking again.
// A TXT record is believed for its TTL, but at least minTXT, so that a burst
// of deliveries to a domain does not ask once per message; its absence
// for negativeTXT, so that a domain that starts publishing a policy is
// noticed within minutes. After a failed lookup or fetch, retryAfter keeps
// every delivery from waiting on a server that is down.
const (
	minTXT      = time.Minute
	negativeTXT = 5 * time.Minute
	retryAfter  = 5 * time.Minute
)

// RefreshEvery is how often Run refreshes the cached policies.
const RefreshEvery = time.Hour

// maxRefreshAge: a cached policy is fetched again once this old, or half its
// max_age if that is shorter, whatever the TXT id says, so that it is
// renewed long before it expires: a sender that let it lapse would have
// to discover it again, which an attacker on the path can prevent.
const maxRefreshAge = 24 * time.Hour

// Resolver answers the DNS questions of MTA-STS; *resolver.Resolver is one.
type Resolver interface {
	Lookup(ctx context.Context, name string, qtype uint16) (resolver.Answer, error)
	Addresses(ctx context.Context, name string) (resolver.Addresses, error)
}

// Config is what Open needs.
type Config struct {
	Dir      string // where policies are kept, one file per domain
	Resolver Resolver
	RootCAs  *x509.CertPool   // trusted for the policy's HTTPS; nil: the system pool
	Now      func() time.Time // nil: time.Now
	Log      *slog.Logger
}

// Cache knows the MTA-STS policy of each domain mail went to. It is safe for
// concurrent use.
type Cache struct {
	dir    string
	dns    Resolver
	client *http.Client
	now    func() time.Time
	log    *slog.Logger

	mu      sync.Mutex
	domains map[string]*domain
}

// domain is what the cache knows of one domain. Its lock is held across a
// lookup or a fetch: deliveries to the domain meanwhile wait for the
// answer rather than ask again.
type domain struct {
	mu     sync.Mutex
	name   string
	stored *stored // the policy cached on disk, nil when none
	policy *Policy // stored's, parsed

	txtUntil time.Time // txtID is believed until then
	txtID    string    // the id the TXT record announces, "" when none

	failUntil time.Time // no fetch before then
	failErr   error     // why the last fetch failed

	gone bool // Refresh dropped it from the cache: look it up again
}

// stored is a policy file of the cache directory.
type stored struct {
	Domain  string    `json:"domain"`
	ID      string    `json:"id"`
	Fetched time.Time `json:"fetched"`
	Expires time.Time `json:"expires"`
	Policy  string    `json:"policy"`
}

// Open loads the policies cached in cfg.Dir, creating it if need be, and
// forgets those that expired.
func Open(cfg Config) (*Cache, error) {
	c := &Cache{dir: cfg.Dir, dns: cfg.Resolver, now: cfg.Now, log: cfg.Log, domains: map[string]*domain{}}
	if c.now == nil {
		c.now = time.Now
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.client = NewClient(c.addrs, cfg.RootCAs)
	if err := durable.MkdirAll(c.dir); err != nil {
		return nil, fmt.Errorf("mta-sts: %w", err)
	}
	ents, err := os.ReadDir(c.dir)
	if err != nil {
		return nil, fmt.Errorf("mta-sts: %w", err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") || !e.Type().IsRegular() {
			continue
		}
		d, err := c.load(e.Name())
		if err != nil {
			c.log.Warn("mta-sts: dropping a cached policy", "file", filepath.Join(c.dir, e.Name()), "err", err)
			os.Remove(filepath.Join(c.dir, e.Name()))
			continue
		}
		c.domains[d.name] = d
	}
	return c, nil
}

func (c *Cache) load(file string) (*domain, error) {
	b, err := os.ReadFile(filepath.Join(c.dir, file))
	if err != nil {
		return nil, err
	}
	var s stored
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, err
	}
	if s.Domain != file {
		return nil, fmt.Errorf("holds the policy of %q", s.Domain)
	}
	if !c.now().Before(s.Expires) {
		return nil, errors.New("expired")
	}
	p, err := Parse(s.Policy)
	if err != nil {
		return nil, err
	}
	return &domain{name: file, stored: &s, policy: p}, nil
}

func (c *Cache) addrs(ctx context.Context, host string) ([]netip.Addr, error) {
	a, err := c.dns.Addresses(ctx, host)
	return a.Addrs, err
}

// Result is the MTA-STS policy in force for a domain.
type Result struct {
	// Policy is nil when the domain has none; its Mode may be None.
	Policy *Policy
	// Err, when Policy is nil, says why the policy the domain announces
	// could not be had: an *InvalidError, or a failed fetch.
	Err error
}

// Get returns domain's policy: the cached one while its TXT id is
// unchanged, else a fetched one. An unexpired cached policy outlives a
// failed fetch and a vanished TXT record (RFC 8461 5.1): an attacker who
// can hide either must not be able to turn the policy off.
func (c *Cache) Get(ctx context.Context, name string) Result {
	for {
		d := c.domain(name)
		if d == nil {
			return Result{}
		}
		if r, ok := c.get(ctx, d); ok {
			return r
		}
	}
}

// get is Get for d; ok is false when Refresh dropped d meanwhile.
func (c *Cache) get(ctx context.Context, d *domain) (r Result, ok bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.gone {
		return Result{}, false
	}
	now := c.now()
	if !now.Before(d.txtUntil) {
		c.lookupTXT(ctx, d, now)
	}
	cached := d.stored != nil && now.Before(d.stored.Expires)
	switch {
	case cached && (d.txtID == "" || d.txtID == d.stored.ID):
		return Result{Policy: d.policy}, true
	case d.txtID == "":
		return Result{}, true
	case now.Before(d.failUntil):
		if cached {
			return Result{Policy: d.policy}, true
		}
		return Result{Err: d.failErr}, true
	}
	if err := c.fetch(ctx, d, now); err != nil {
		if cached {
			c.log.Warn("mta-sts: applying the cached policy", "domain", d.name, "err", err)
			return Result{Policy: d.policy}, true
		}
		return Result{Err: err}, true
	}
	return Result{Policy: d.policy}, true
}

// domain returns the state of the domain named name, made on first use;
// nil for a name that cannot have a policy.
func (c *Cache) domain(name string) *domain {
	name, err := idna.Lookup.ToASCII(strings.TrimSuffix(name, "."))
	name = strings.ToLower(name)
	if err != nil || !hostName(name) {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	d := c.domains[name]
	if d == nil {
		d = &domain{name: name}
		c.domains[name] = d
	}
	return d
}

// hostName accepts what can be a domain with a policy, and a file name in
// the cache: letters, digits, '-' and '_' in non-empty labels, nothing that
// could climb out of the directory.
func hostName(name string) bool {
	if name == "" || len(name) > 253 {
		return false
	}
	for label := range strings.SplitSeq(name, ".") {
		if label == "" {
			return false
		}
		for _, c := range label {
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// lookupTXT asks for the TXT record of d and notes the id it announces.
func (c *Cache) lookupTXT(ctx context.Context, d *domain, now time.Time) {
	a, err := c.dns.Lookup(ctx, "_mta-sts."+d.name, dns.TypeTXT)
	var txts []string
	for _, rr := range a.RRs {
		if t, ok := rr.(*dns.TXT); ok {
			txts = append(txts, strings.Join(t.Txt, ""))
		}
	}
	id, ok := ParseRecord(txts)
	switch {
	case ok:
		d.txtID, d.txtUntil = id, now.Add(max(time.Duration(a.TTL)*time.Second, minTXT))
	case err != nil && !errors.Is(err, resolver.ErrNXDomain):
		c.log.Info("mta-sts: TXT lookup failed", "domain", d.name, "err", err)
		d.txtID, d.txtUntil = "", now.Add(retryAfter)
	default:
		d.txtID, d.txtUntil = "", now.Add(negativeTXT)
	}
}

// fetch gets d's policy and caches it under the TXT id, on disk first.
func (c *Cache) fetch(ctx context.Context, d *domain, now time.Time) error {
	p, err := Fetch(ctx, c.client, d.name)
	if err == nil {
		// A max_age of 0 still covers the deliveries of the next minute,
		// rather than have each fetch the policy again.
		s := &stored{Domain: d.name, ID: d.txtID, Fetched: now, Expires: now.Add(max(p.MaxAge, minTXT)), Policy: p.Text}
		if err = c.store(s); err == nil {
			d.stored, d.policy, d.failErr, d.failUntil = s, p, nil, time.Time{}
			c.log.Info("mta-sts: policy fetched", "domain", d.name, "id", s.ID, "mode", p.Mode,
				"mx", strings.Join(p.MX, ","), "max_age", int64(p.MaxAge/time.Second))
			return nil
		}
	}
	d.failErr, d.failUntil = err, now.Add(retryAfter)
	c.log.Warn("mta-sts: policy fetch failed", "domain", d.name, "id", d.txtID, "err", err)
	return err
}

func (c *Cache) store(s *stored) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	if err := durable.WriteFile(filepath.Join(c.dir, s.Domain), append(b, '\n')); err != nil {
		return fmt.Errorf("mta-sts: caching the policy of %s: %w", s.Domain, err)
	}
	return nil
}

// Refresh fetches again each cached policy that is due (see maxRefreshAge),
// so that a policy in use never expires for want of a delivery at the right
// moment, and forgets the expired policies and the domains without one.
func (c *Cache) Refresh(ctx context.Context) {
	c.mu.Lock()
	var ds []*domain
	for _, d := range c.domains {
		ds = append(ds, d)
	}
	c.mu.Unlock()
	for _, d := range ds {
		if ctx.Err() != nil {
			return
		}
		c.refresh(ctx, d)
	}
}

func (c *Cache) refresh(ctx context.Context, d *domain) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := c.now()
	if s := d.stored; s != nil && now.Sub(s.Fetched) >= min(maxRefreshAge, d.policy.MaxAge/2) {
		c.lookupTXT(ctx, d, now)
		if d.txtID != "" {
			c.fetch(ctx, d, now)
		}
	}
	if d.stored != nil && !now.Before(d.stored.Expires) {
		os.Remove(filepath.Join(c.dir, d.name))
		d.stored, d.policy = nil, nil
	}
	if d.stored == nil && !now.Before(d.txtUntil) && !now.Before(d.failUntil) {
		d.gone = true
		c.mu.Lock()
		delete(c.domains, d.name)
		c.mu.Unlock()
	}
}

// Run refreshes the cached policies every RefreshEvery until ctx ends.
func (c *Cache) Run(ctx context.Context) {
	t := time.NewTicker(RefreshEvery)
	defer t.Stop()
	for {
		c.Refresh(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
