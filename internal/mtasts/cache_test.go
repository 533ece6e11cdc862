package mtasts

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"facteur/internal/resolver"
	"facteur/internal/smtptest"
)

const enforce = "version: STSv1\nmode: enforce\nmx: *.sts.test\nmax_age: 86400\n"

// world is a Cache asking a fake DNS, with a clock the test moves.
type world struct {
	t   *testing.T
	dns *smtptest.DNSServer
	res *resolver.Resolver
	ca  *smtptest.CA
	dir string
	now time.Time
	mu  sync.Mutex
}

func newWorld(t *testing.T) *world {
	dns := smtptest.NewDNS(t)
	res, err := resolver.New(dns.Addr(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return &world{t: t, dns: dns, res: res, ca: smtptest.NewCA(t, "mta-sts.sts.test"), dir: t.TempDir(),
		now: time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)}
}

func (w *world) open() *Cache {
	w.t.Helper()
	c, err := Open(Config{Dir: w.dir, Resolver: w.res, RootCAs: w.ca.Pool(), Now: w.clock})
	if err != nil {
		w.t.Fatal(err)
	}
	return c
}

func (w *world) clock() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.now
}

func (w *world) advance(d time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.now = w.now.Add(d)
}

// publish makes sts.test announce a policy with id, served at ip.
func (w *world) publish(ip, id string) {
	w.dns.Remove("_mta-sts.sts.test", dns.TypeTXT)
	w.dns.TXT("_mta-sts.sts.test", "v=STSv1; id="+id+";")
	w.dns.Remove("mta-sts.sts.test", dns.TypeA)
	w.dns.A("mta-sts.sts.test", ip)
}

func mode(r Result) string {
	if r.Policy == nil {
		return "none found"
	}
	return string(r.Policy.Mode)
}

func TestCacheFetchesOnceAndAgainOnNewID(t *testing.T) {
	w := newWorld(t)
	srv := smtptest.NewSTSServer(t, "127.83.0.1", w.ca.ServerTLS(), enforce)
	w.publish("127.83.0.1", "one")
	c := w.open()
	ctx := context.Background()
	for range 5 {
		if r := c.Get(ctx, "STS.test."); mode(r) != "enforce" || !r.Policy.Matches("mx1.sts.test") {
			t.Fatalf("Get = %+v", r)
		}
	}
	if n := srv.Requests(); n != 1 {
		t.Errorf("%d HTTPS requests for 5 deliveries, want 1", n)
	}
	if n := w.dns.Queries("_mta-sts.sts.test"); n != 1 {
		t.Errorf("%d TXT queries for 5 deliveries, want 1", n)
	}
	// The TXT answer outlives its TTL: asked again, same id, no fetch.
	w.advance(10 * time.Minute)
	c.Get(ctx, "sts.test")
	if q, n := w.dns.Queries("_mta-sts.sts.test"), srv.Requests(); q != 2 || n != 1 {
		t.Errorf("after the TTL: %d TXT queries, %d fetches; want 2, 1", q, n)
	}
	// A new id: fetched again, and the new policy applies.
	srv.Policy(strings.Replace(enforce, "enforce", "testing", 1))
	w.publish("127.83.0.1", "two")
	w.advance(10 * time.Minute)
	if r := c.Get(ctx, "sts.test"); mode(r) != "testing" || srv.Requests() != 2 {
		t.Errorf("new id: %s after %d fetches, want testing after 2", mode(r), srv.Requests())
	}
	// A domain without a TXT record has no policy, and no fetch; nor
	// has what is no domain name.
	for _, d := range []string{"plain.test", "[192.0.2.1]", "../etc", "a..b"} {
		if r := c.Get(ctx, d); r.Policy != nil || r.Err != nil {
			t.Errorf("%s: %+v", d, r)
		}
	}
}

func TestCacheOutlivesFetchFailureTXTLossAndRestart(t *testing.T) {
	w := newWorld(t)
	srv := smtptest.NewSTSServer(t, "127.83.0.2", w.ca.ServerTLS(), enforce)
	w.publish("127.83.0.2", "one")
	ctx := context.Background()
	if r := w.open().Get(ctx, "sts.test"); mode(r) != "enforce" {
		t.Fatalf("Get = %+v", r)
	}
	srv.Status(http.StatusServiceUnavailable)
	// A new process, a new id, and the server fails: the cached policy
	// still applies, from disk.
	w.publish("127.83.0.2", "two")
	c := w.open()
	if r := c.Get(ctx, "sts.test"); mode(r) != "enforce" {
		t.Errorf("fetch failed: %+v, want the cached enforce policy", r)
	}
	// Within the retry delay, no fetch again.
	n := srv.Requests()
	w.advance(time.Minute)
	c.Get(ctx, "sts.test")
	if srv.Requests() != n {
		t.Error("a failed fetch was tried again at once")
	}
	// The TXT record gone, the policy still applies until it expires.
	w.dns.Remove("_mta-sts.sts.test", dns.TypeTXT)
	w.advance(time.Hour)
	if r := c.Get(ctx, "sts.test"); mode(r) != "enforce" {
		t.Errorf("TXT gone: %+v, want the cached enforce policy", r)
	}
	w.advance(24 * time.Hour)
	if r := c.Get(ctx, "sts.test"); r.Policy != nil {
		t.Errorf("expired: %+v, want none", r)
	}
}

func TestCacheFetchErrorWithoutCachedPolicy(t *testing.T) {
	w := newWorld(t)
	srv := smtptest.NewSTSServer(t, "127.83.0.3", w.ca.ServerTLS(), "version: STSv1\nmode: enforce\nmax_age: 60\n")
	w.publish("127.83.0.3", "one")
	r := w.open().Get(context.Background(), "sts.test")
	if r.Policy != nil || !errors.As(r.Err, new(*InvalidError)) {
		t.Errorf("invalid policy: %+v, want an InvalidError", r)
	}
	srv.Policy(enforce)
	srv.ContentType("text/html")
	w.advance(time.Hour)
	if r := w.open().Get(context.Background(), "sts.test"); r.Policy != nil || r.Err == nil || !strings.Contains(r.Err.Error(), "not text/plain") {
		t.Errorf("text/html: %+v", r)
	}
	if ents, _ := os.ReadDir(w.dir); len(ents) != 0 {
		t.Errorf("cached %v", ents)
	}
}

func TestRefresh(t *testing.T) {
	w := newWorld(t)
	srv := smtptest.NewSTSServer(t, "127.83.0.4", w.ca.ServerTLS(), enforce)
	w.publish("127.83.0.4", "one")
	c := w.open()
	ctx := context.Background()
	c.Get(ctx, "sts.test")
	c.Get(ctx, "plain.test")
	c.Refresh(ctx)
	if n := srv.Requests(); n != 1 {
		t.Errorf("refreshed a fresh policy: %d fetches", n)
	}
	// Half the max_age later, the same id: fetched again, which renews
	// the policy for a full max_age.
	w.advance(12 * time.Hour)
	c.Refresh(ctx)
	if n := srv.Requests(); n != 2 {
		t.Errorf("%d fetches, want the refresh's too", n)
	}
	w.advance(20 * time.Hour)
	srv.Status(http.StatusInternalServerError)
	if r := c.Get(ctx, "sts.test"); mode(r) != "enforce" {
		t.Errorf("32 hours after the first fetch: %+v, want the refreshed policy", r)
	}
	// Refreshes fail until the policy expires: it is forgotten, on disk too.
	for range 4 {
		w.advance(6 * time.Hour)
		c.Refresh(ctx)
	}
	if _, err := os.Stat(filepath.Join(w.dir, "sts.test")); !os.IsNotExist(err) {
		t.Errorf("expired policy still on disk: %v", err)
	}
	c.mu.Lock()
	n := len(c.domains)
	c.mu.Unlock()
	if n != 0 {
		t.Errorf("%d domains still in memory", n)
	}
}

func TestFetch(t *testing.T) {
	w := newWorld(t)
	srv := smtptest.NewSTSServer(t, "127.83.0.5", w.ca.ServerTLS(), enforce)
	// Every name is the server's address.
	addrs := func(context.Context, string) ([]netip.Addr, error) {
		return []netip.Addr{netip.MustParseAddr("127.83.0.5")}, nil
	}
	client := NewClient(addrs, w.ca.Pool())
	ctx := context.Background()
	if _, err := Fetch(ctx, client, "sts.test"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		set  func()
		want string
	}{
		{"redirect", func() { srv.Redirect("https://mta-sts.sts.test/elsewhere") }, "302 Found"},
		{"too large", func() { srv.Redirect(""); srv.Policy(enforce + strings.Repeat("#", MaxPolicy)) }, "larger than"},
		{"not found", func() { srv.Policy(enforce); srv.Status(http.StatusNotFound) }, "404"},
	} {
		c.set()
		if _, err := Fetch(ctx, client, "sts.test"); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	// A certificate that is not for mta-sts.<domain>.
	// (TLS reports tell this failure, sts-webpki-invalid, by its type.)
	if _, err := Fetch(ctx, client, "other.test"); !errors.As(err, new(*tls.CertificateVerificationError)) {
		t.Errorf("wrong name: %v", err)
	}
}
