package remote

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/emersion/go-smtp"

	"facteur/internal/mx"
)

// Deliver delivers msgs, all for recipients at domain, and returns one
// Result per recipient per message: out[i][j] is for msgs[i].Rcpts[j].
//
// Hosts are tried in order, and each address of a host, until every message
// has been taken by a host or refused for good. A host takes a message when
// it accepts MAIL; from then on its replies are final, so a message is never
// sent to a second host after a 250. Messages share a connection, and a
// healthy connection is kept for the next call to the same address
// (see Client.IdleTimeout).
func (c *Client) Deliver(ctx context.Context, domain string, msgs []*Message) [][]Result {
	d := newDelivery(msgs, path)
	if !d.pending() {
		return d.out
	}
	hosts, err := c.Resolver.Lookup(ctx, domain)
	if err != nil {
		r := lookupResult(err)
		c.log().Info("MX lookup failed", "domain", domain, "ids", d.openIDs(), "status", r.Status, "err", err)
		d.finishAll(r)
		return d.out
	}
	tlsFor := c.hostTLS(ctx, domain, hosts)
	for i, h := range hosts {
		ht := tlsFor[i]
		if ht.Refuse != nil && d.pending() {
			r := Result{Status: Transient, Enhanced: "4.7.5", Host: h.Name, TLSPolicy: ht.name(),
				Text: fmt.Sprintf("%s: %s: %v", ht.why(), h.Name, ht.Refuse)}
			c.log().Info("host refused by TLS policy", "host", h.Name, "ids", d.openIDs(), "err", r.Text)
			c.report(d, domain, h.Name, netip.Addr{}, netip.Addr{}, ht, ht.Refuse)
			d.failOpen(r)
			continue
		}
		for _, addr := range h.Addrs {
			if !d.pending() || ctx.Err() != nil {
				break
			}
			c.attempt(ctx, d, domain, h.Name, addr, ht)
		}
	}
	if err := ctx.Err(); err != nil {
		d.failOpen(Result{Status: Transient, Enhanced: "4.4.7", Text: "delivery interrupted: " + err.Error()})
	}
	d.finishOpen()
	return d.out
}

// attempt delivers what is still open over one connection to addr: an idle
// session left by an earlier call if there is one, else a new connection,
// secured as ht says.
func (c *Client) attempt(ctx context.Context, d *delivery, domain, host string, addr netip.Addr, ht HostTLS) {
	log := c.log().With("host", host, "addr", addr)
	key := c.poolKey(host, addr, ht)
	if r, dead := c.heldBack(key); dead {
		log.Info("host failed recently, not tried", "ids", d.openIDs(), "err", r.Text)
		d.failOpen(r)
		return
	}
	if s := c.take(key); s != nil {
		s.bind(ctx)
		s.reused = true
		if c.run(s, d) || !s.stale {
			return
		}
		log.Debug("idle session closed by the server, connecting again")
	}
	s, err := c.connect(ctx, host, addr, ht)
	if tlsErr := (*tlsError)(nil); errors.As(err, &tlsErr) {
		c.report(d, domain, host, tlsErr.local, addr, ht, err)
		if ht.Mode == Opportunistic {
			log.Warn("STARTTLS failed, delivering in plaintext", "err", err)
			plain := ht
			plain.Mode = None
			s, err = c.connect(ctx, host, addr, plain)
		}
	}
	if err != nil {
		r := connectResult(err)
		r.Host, r.TLSPolicy = host, ht.name()
		r.Text = fmt.Sprintf("%s[%s]: %s", host, addr, r.Text)
		if errors.Is(err, errNoSTARTTLS) {
			c.report(d, domain, host, netip.Addr{}, addr, ht, err)
		}
		if policyFailure(err) {
			r.Text = ht.why() + ": " + r.Text
		}
		log.Info("no session", "ids", d.openIDs(), "err", r.Text)
		c.markDead(key, r)
		d.failOpen(r)
		return
	}
	if s.tls || ht.Mode != None {
		failure := s.audit
		if !s.tls {
			failure = errNoSTARTTLS
		}
		c.report(d, domain, host, s.local(), addr, ht, failure)
	}
	c.run(s, d)
}

// run carries the open messages over s, then keeps s for the next call or
// ends it. It reports whether s stayed healthy to the end.
func (c *Client) run(s *session, d *delivery) bool {
	last := -1
	for i := range d.msgs {
		if d.open[i] {
			last = i
		}
	}
	for i := range d.msgs {
		if d.open[i] && !c.transact(s, d, i, i < last) {
			s.resolve()
			if s.stale {
				s.close()
				return false
			}
			s.quit()
			d.holdBack(i+1, s.heldBack())
			return false
		}
	}
	if !s.resolve() {
		s.quit()
		return false
	}
	c.release(s)
	return true
}

// lookupResult turns a failed MX lookup into the result of every recipient.
func lookupResult(err error) Result {
	var e *mx.Error
	if errors.As(err, &e) {
		st := Transient
		if e.Permanent {
			st = Permanent
		}
		return Result{Status: st, Enhanced: e.Enhanced, Text: e.Error()}
	}
	return Result{Status: Transient, Enhanced: "4.4.3", Text: err.Error()}
}

// policyFailure tells a failure to secure the session, which the policy
// is the reason of, from the host's own failures.
func policyFailure(err error) bool {
	return errors.Is(err, errNoSTARTTLS) || errors.As(err, new(*tlsError))
}

// connectResult classifies a failure to open a session. Whatever the reply,
// it is only this host's problem: the next one may do better, and if none
// does, the message waits for a later attempt.
func connectResult(err error) Result {
	var reply *smtp.SMTPError
	var tlsErr *tlsError
	switch {
	case errors.As(err, &reply):
		r := replyResult(reply)
		r.Status = Transient
		r.Text = r.line()
		return r
	case errors.Is(err, errNoSTARTTLS):
		return Result{Status: Transient, Enhanced: "4.7.4", Text: err.Error()}
	case errors.As(err, &tlsErr):
		return Result{Status: Transient, Enhanced: "4.7.5", Text: err.Error()}
	}
	return Result{Status: Transient, Enhanced: "4.4.1", Text: "connection failed: " + err.Error()}
}
