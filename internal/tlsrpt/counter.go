package tlsrpt

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"facteur/internal/durable"
)

// Bounds on what one day's counts hold, so that a domain whose servers
// fail in ever new ways (an error text that names a random port) cannot
// grow them without end: past them, sessions are still counted in the
// summary, without a failure detail of their own.
const (
	maxDetails   = 100 // distinct failure details per policy
	maxReasonLen = 200 // bytes of a failure-reason-code
)

// dayLayout names a UTC day, in the counters' file names and in the map.
const dayLayout = "2006-01-02"

// Detail is one kind of failed session, as RFC 8460 4.4's failure-details
// tell them apart.
type Detail struct {
	ResultType  string `json:"result_type"`
	SendingIP   string `json:"sending_ip,omitempty"`
	ReceivingMX string `json:"receiving_mx,omitempty"`
	ReceivingIP string `json:"receiving_ip,omitempty"`
	Reason      string `json:"reason,omitempty"`
}

// PolicyCount is one policy's sessions over a day.
type PolicyCount struct {
	Policy   Policy        `json:"policy"`
	Success  int64         `json:"success"`
	Failure  int64         `json:"failure"`
	Failures []DetailCount `json:"failures,omitempty"`
}

// DetailCount is how many failed sessions had one Detail.
type DetailCount struct {
	Detail
	Count int64 `json:"count"`
}

// Tally is one recipient domain's sessions over one day, by policy.
type Tally struct {
	Policies []*PolicyCount `json:"policies"`
}

func (t *Tally) add(s Session) {
	var pc *PolicyCount
	for _, p := range t.Policies {
		if samePolicy(p.Policy, s.Policy) {
			pc = p
			break
		}
	}
	if pc == nil {
		pc = &PolicyCount{Policy: s.Policy}
		t.Policies = append(t.Policies, pc)
	}
	if s.Failure == "" {
		pc.Success++
		return
	}
	pc.Failure++
	d := Detail{ResultType: s.Failure, ReceivingMX: s.ReceivingMX, Reason: truncate(s.Reason, maxReasonLen)}
	if s.SendingIP.IsValid() {
		d.SendingIP = s.SendingIP.String()
	}
	if s.ReceivingIP.IsValid() {
		d.ReceivingIP = s.ReceivingIP.String()
	}
	for i := range pc.Failures {
		if pc.Failures[i].Detail == d {
			pc.Failures[i].Count++
			return
		}
	}
	if len(pc.Failures) < maxDetails {
		pc.Failures = append(pc.Failures, DetailCount{Detail: d, Count: 1})
	}
}

func samePolicy(a, b Policy) bool {
	return a.Type == b.Type && a.Domain == b.Domain && slices.Equal(a.Strings, b.Strings) && slices.Equal(a.MXHosts, b.MXHosts)
}

// truncate cuts s to at most n bytes; a rune cut in two is dropped.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}

// Counter counts sessions per recipient domain and UTC day, in memory, and
// keeps them in dir, one file per day (2026-12-02.json) mapping each
// domain to its Tally. Flush writes the days that changed; what a crash
// loses is what was counted since the last Flush, which the reports can
// afford (mail cannot, and is not kept here).
type Counter struct {
	dir string
	now func() time.Time

	mu    sync.Mutex
	days  map[string]map[string]*Tally // day → domain → tally
	dirty map[string]bool              // days changed since written
}

// OpenCounter reads the counts kept in dir, which it creates if need be.
// now is the clock that says which day a session belongs to.
func OpenCounter(dir string, now func() time.Time) (*Counter, error) {
	if err := durable.MkdirAll(dir); err != nil {
		return nil, err
	}
	c := &Counter{dir: dir, now: now, days: map[string]map[string]*Tally{}, dirty: map[string]bool{}}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		day, ok := strings.CutSuffix(e.Name(), ".json")
		if _, err := time.Parse(dayLayout, day); !ok || err != nil {
			continue // a temporary file of a write a crash interrupted
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		var tallies map[string]*Tally
		if err := json.Unmarshal(b, &tallies); err != nil {
			return nil, fmt.Errorf("tls reports: %s: %w", filepath.Join(dir, e.Name()), err)
		}
		c.days[day] = tallies
	}
	return c, nil
}

// Add counts one session with a server of domain, on today's count.
func (c *Counter) Add(domain string, s Session) {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	day := c.now().UTC().Format(dayLayout)
	c.mu.Lock()
	defer c.mu.Unlock()
	tallies := c.days[day]
	if tallies == nil {
		tallies = map[string]*Tally{}
		c.days[day] = tallies
	}
	t := tallies[domain]
	if t == nil {
		t = &Tally{}
		tallies[domain] = t
	}
	t.add(s)
	c.dirty[day] = true
}

// Flush writes the days counted since the last Flush, each file replaced
// whole and durably; a day with nothing left is removed.
func (c *Counter) Flush() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for day := range c.dirty {
		if err := c.write(day); err != nil {
			errs = append(errs, err)
			continue
		}
		delete(c.dirty, day)
	}
	return errors.Join(errs...)
}

func (c *Counter) write(day string) error {
	path := filepath.Join(c.dir, day+".json")
	tallies := c.days[day]
	if len(tallies) == 0 {
		delete(c.days, day)
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return durable.SyncDir(c.dir)
	}
	b, err := json.Marshal(tallies)
	if err != nil {
		return err
	}
	return durable.WriteFile(path, b)
}

// Ended lists the days with counts that are over (before today), oldest
// first.
func (c *Counter) Ended() []string {
	today := c.now().UTC().Format(dayLayout)
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for day := range c.days {
		if day < today {
			out = append(out, day)
		}
	}
	slices.Sort(out)
	return out
}

// Day returns a copy of one day's tallies by domain.
func (c *Counter) Day(day string) map[string]*Tally {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]*Tally, len(c.days[day]))
	for domain, t := range c.days[day] {
		// A JSON round trip is the deep copy: the tallies are plain data.
		b, _ := json.Marshal(t)
		var cp Tally
		json.Unmarshal(b, &cp)
		out[domain] = &cp
	}
	return out
}

// Clear forgets domain's counts of day, durably at once: it is called
// when the report is queued, and a crash after must not send it again.
func (c *Counter) Clear(day, domain string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.days[day], domain)
	if err := c.write(day); err != nil {
		c.dirty[day] = true
		return err
	}
	delete(c.dirty, day)
	return nil
}
