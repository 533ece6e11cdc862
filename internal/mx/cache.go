package mx

import (
	"sync"
	"time"
)

// maxCacheEntries bounds the memory a burst of distinct domains can take.
const maxCacheEntries = 10000

// cache holds positive Lookup answers by lowercase domain until they expire.
// Failures are never cached: a transient one must be retried for real, and
// a permanent one ends in a bounce and is not asked again soon.
type cache struct {
	mu      sync.Mutex
	max     int
	entries map[string]cacheEntry
}

type cacheEntry struct {
	hosts   []Host
	expires time.Time
}

func newCache(max int) *cache {
	return &cache{max: max, entries: make(map[string]cacheEntry)}
}

func (c *cache) get(name string, now time.Time) ([]Host, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[name]
	if !ok {
		return nil, false
	}
	if !now.Before(e.expires) {
		delete(c.entries, name)
		return nil, false
	}
	return e.hosts, true
}

func (c *cache) put(name string, hosts []Host, expires time.Time) {
	now := time.Now()
	if !now.Before(expires) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.max {
		c.evict(now)
	}
	c.entries[name] = cacheEntry{hosts: hosts, expires: expires}
}

// evict drops expired entries and, if that is not enough, arbitrary ones
// down to 90% of the limit, so that a full cache does not sweep on every put.
func (c *cache) evict(now time.Time) {
	for k, e := range c.entries {
		if !now.Before(e.expires) {
			delete(c.entries, k)
		}
	}
	for k := range c.entries {
		if len(c.entries) < c.max*9/10 {
			break
		}
		delete(c.entries, k)
	}
}
