package remote

import (
	"fmt"
	"sync"
	"time"
)

// DefaultDeadHostTime is Client.DeadHostTime's default: long enough for
// the deliveries under way to a host that is down not to wait on it one
// after the other, short against the queue's backoff.
const DefaultDeadHostTime = time.Minute

// deadHosts remembers the host addresses whose connection failed. Only a
// failure to open a session counts: a 4xx to MAIL, RCPT or DATA concerns
// its transaction, and a session the server ends holds back only its own
// messages (run).
type deadHosts struct {
	mu   sync.Mutex
	down map[poolKey]deadHost
}

type deadHost struct {
	at  time.Time
	why Result
}

// deadHostsMax bounds the cache; past it the expired entries go.
const deadHostsMax = 1024

func (c *Client) deadHostTime() time.Duration {
	if c.DeadHostTime == 0 {
		return DefaultDeadHostTime
	}
	return c.DeadHostTime
}

// markDead records that a connection to k failed with why.
func (c *Client) markDead(k poolKey, why Result) {
	if c.deadHostTime() < 0 {
		return
	}
	h := &c.dead
	h.mu.Lock()
	defer h.mu.Unlock()
	now := time.Now()
	if len(h.down) >= deadHostsMax {
		for k, d := range h.down {
			if now.Sub(d.at) >= c.deadHostTime() {
				delete(h.down, k)
			}
		}
	}
	if h.down == nil {
		h.down = map[poolKey]deadHost{}
	}
	h.down[k] = deadHost{at: now, why: why}
}

// heldBack reports whether k failed recently, with the result of the
// messages it holds back: the failure, and how long ago it was.
func (c *Client) heldBack(k poolKey) (Result, bool) {
	h := &c.dead
	h.mu.Lock()
	defer h.mu.Unlock()
	d, ok := h.down[k]
	if !ok {
		return Result{}, false
	}
	if age := time.Since(d.at); age < c.deadHostTime() {
		r := d.why
		r.Text = fmt.Sprintf("held back: %s (%s ago)", r.Text, age.Round(time.Second))
		return r, true
	}
	delete(h.down, k)
	return Result{}, false
}

// ForgetDeadHosts has every host tried again at the next call, for an
// operator who knows they are back.
func (c *Client) ForgetDeadHosts() {
	c.dead.mu.Lock()
	c.dead.down = nil
	c.dead.mu.Unlock()
}
