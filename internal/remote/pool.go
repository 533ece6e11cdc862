package remote

import (
	"crypto/x509"
	"net/netip"
	"sync"
	"time"
)

// Idle session limits. Four per key matches the default outbound.per_domain,
// so a steady stream to one domain keeps every concurrent job on a warm
// session.
const (
	DefaultIdleTimeout = 10 * time.Second
	maxIdlePerKey      = 4
	maxIdle            = 64
)

// poolKey is what a session must share with a delivery to carry it: the
// address it is connected to, the host name it was opened for (the TLS
// ServerName, and the Host of results), and what was settled at the start of
// the session: the TLS mode and the check it passed (roots for Verify, a
// policy's Key), the EHLO name.
type poolKey struct {
	addr  netip.AddrPort
	host  string
	mode  Policy
	check string         // HostTLS.Key
	roots *x509.CertPool // only with Verify
	helo  string
}

func (c *Client) poolKey(host string, addr netip.Addr, ht HostTLS) poolKey {
	k := poolKey{addr: netip.AddrPortFrom(addr, c.port()), host: host, mode: ht.Mode, check: ht.Key, helo: c.helo()}
	if ht.Mode == Verify {
		k.roots = c.RootCAs
	}
	return k
}

// idlePool holds sessions between Deliver calls. A session is either in the
// pool or owned by one Deliver call, never both: take removes it under the
// lock. One timer, armed for the oldest session, closes those idle too long.
type idlePool struct {
	mu     sync.Mutex
	idle   map[poolKey][]*session // oldest first
	n      int
	timer  *time.Timer
	closed bool
	quits  sync.WaitGroup // QUITs of expired sessions under way
}

func (c *Client) idleTimeout() time.Duration {
	if c.IdleTimeout == 0 {
		return DefaultIdleTimeout
	}
	return c.IdleTimeout
}

// take hands over the most recently used idle session for k, if any.
func (c *Client) take(k poolKey) *session {
	if c.idleTimeout() < 0 {
		return nil
	}
	p := &c.pool
	p.mu.Lock()
	defer p.mu.Unlock()
	ss := p.idle[k]
	if len(ss) == 0 {
		return nil
	}
	s := ss[len(ss)-1]
	p.remove(k, len(ss)-1)
	// The janitor may be late, but a session past its time is never used:
	// the server may be about to hang up on it.
	if time.Since(s.idleSince) >= c.idleTimeout() {
		p.quits.Go(s.quit)
		return nil
	}
	return s
}

// release keeps s, which the last Deliver left healthy and idle, for the
// next one, or ends it if reuse is off, the pool is full or closed.
func (c *Client) release(s *session) {
	timeout := c.idleTimeout()
	if timeout < 0 || !s.unbind() {
		s.quit()
		return
	}
	p := &c.pool
	p.mu.Lock()
	if p.closed || len(p.idle[s.key]) >= maxIdlePerKey {
		p.mu.Unlock()
		s.quit()
		return
	}
	var evicted *session
	if p.n >= maxIdle {
		evicted = p.evictOldest()
	}
	s.idleSince = time.Now()
	if p.idle == nil {
		p.idle = make(map[poolKey][]*session)
	}
	p.idle[s.key] = append(p.idle[s.key], s)
	p.n++
	if p.timer == nil {
		p.timer = time.AfterFunc(timeout, func() { c.expire() })
	} else if p.n == 1 {
		p.timer.Reset(timeout)
	}
	p.mu.Unlock()
	if evicted != nil {
		evicted.quit()
	}
}

// expire is the janitor: it ends the sessions idle for the whole timeout and
// arms itself for the next one to come due.
func (c *Client) expire() {
	timeout := c.idleTimeout()
	p := &c.pool
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	var next time.Time
	for k, ss := range p.idle {
		for i := 0; i < len(ss); {
			s := ss[i]
			if due := s.idleSince.Add(timeout); now.Before(due) {
				if next.IsZero() || due.Before(next) {
					next = due
				}
				i++
				continue
			}
			p.remove(k, i)
			ss = p.idle[k]
			p.quits.Go(s.quit)
		}
	}
	if !next.IsZero() && !p.closed {
		p.timer.Reset(next.Sub(now))
	}
}

// remove takes session i of key k out of the pool; the caller holds mu.
func (p *idlePool) remove(k poolKey, i int) {
	ss := p.idle[k]
	ss = append(ss[:i], ss[i+1:]...)
	if len(ss) == 0 {
		delete(p.idle, k)
	} else {
		p.idle[k] = ss
	}
	p.n--
}

// evictOldest takes out the session idle the longest, to make room for a
// fresher one; the caller holds mu.
func (p *idlePool) evictOldest() *session {
	var oldest *session
	for _, ss := range p.idle {
		if s := ss[0]; oldest == nil || s.idleSince.Before(oldest.idleSince) {
			oldest = s
		}
	}
	if oldest != nil {
		p.remove(oldest.key, 0)
	}
	return oldest
}

// Close ends every idle session with QUIT and keeps no more. The Client
// still delivers afterwards, with a new connection each time. Call it when
// done with the Client, at shutdown.
func (c *Client) Close() error {
	p := &c.pool
	p.mu.Lock()
	p.closed = true
	if p.timer != nil {
		p.timer.Stop()
	}
	var all []*session
	for _, ss := range p.idle {
		all = append(all, ss...)
	}
	p.idle, p.n = nil, 0
	for _, s := range all {
		p.quits.Go(s.quit)
	}
	p.mu.Unlock()
	p.quits.Wait()
	return nil
}
