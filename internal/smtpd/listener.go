package smtpd

import (
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"

	"facteur/internal/metrics"
)

// conns counts and tracks every open connection of the server, across
// listeners, so that limits are global and a shutdown can reach idle
// sessions that go-smtp would otherwise wait for.
type conns struct {
	max, maxPerIP int
	hostname      string // for the goodbye at shutdown
	log           *slog.Logger
	nextID        atomic.Uint64

	mu       sync.Mutex
	open     map[*conn]struct{}
	perIP    map[netip.Addr]int
	draining bool
}

func newConns(max, maxPerIP int, hostname string, log *slog.Logger) *conns {
	return &conns{max: max, maxPerIP: maxPerIP, hostname: hostname, log: log,
		open: map[*conn]struct{}{}, perIP: map[netip.Addr]int{}}
}

// admit registers c, or reports which limit it would exceed. The per-IP
// cap is for Internet clients; the relay's clients are the host's own
// programs, which may all come from one loopback address.
func (cs *conns) admit(c *conn, perIPLimited bool) (refusal string) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	switch {
	case cs.draining:
		return "shutting down"
	case len(cs.open) >= cs.max:
		return "too many connections"
	case perIPLimited && cs.perIP[c.ip] >= cs.maxPerIP:
		return "too many connections from your address"
	}
	cs.open[c] = struct{}{}
	cs.perIP[c.ip]++
	return ""
}

func (cs *conns) release(c *conn) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if _, ok := cs.open[c]; !ok {
		return
	}
	delete(cs.open, c)
	if cs.perIP[c.ip]--; cs.perIP[c.ip] <= 0 {
		delete(cs.perIP, c.ip)
	}
}

// drain refuses new connections and wakes every session that is not in
// the middle of receiving a message: its pending read fails at once, and
// the session says goodbye (see conn.goodbye).
func (cs *conns) drain() {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.draining = true
	for c := range cs.open {
		if !c.busy.Load() {
			c.Conn.SetReadDeadline(time.Now())
		}
	}
}

func (cs *conns) isDraining() bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.draining
}

func (cs *conns) count() int {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return len(cs.open)
}

// conn is one client connection as the server tracks it.
type conn struct {
	net.Conn
	cs       *conns
	id       uint64
	ip       netip.Addr
	listener string
	opened   time.Time
	busy     atomic.Bool // receiving message data: a shutdown lets it finish
	// implicitTLS: go-smtp talks through a TLS connection over this one
	// from the start.
	implicitTLS bool
	// session is go-smtp's side of the connection, known from EHLO on: its
	// Conn is what go-smtp writes to, TLS or not.
	session atomic.Pointer[smtp.Conn]
	saidBye atomic.Bool
	// onClose, when set, runs once the connection is closed.
	onClose func()
	// hangUp closes the connection once the next reply is written: the
	// session's last word, e.g. after too many failed logins.
	hangUp atomic.Bool
	once   sync.Once
	wire   wire  // the connection guard (wire.go)
	ahead  ahead // message data read ahead (ahead.go)

	// Replies are held until the session next reads, then sent in one
	// write: go-smtp writes each line of a multi-line reply (EHLO's nine)
	// and each pipelined reply on its own, and every write is a syscall
	// here and a wake-up for the client. Nothing waits on a held reply:
	// the client only needs it once the server waits for the client.
	mu  sync.Mutex
	out []byte
}

// flushAt bounds the replies held back.
const flushAt = 16 << 10

// SetReadDeadline is how go-smtp arms its idle timeout before each command;
// once the server drains, an idle session gets no new time.
func (c *conn) SetReadDeadline(t time.Time) error {
	if !c.busy.Load() && c.cs.isDraining() {
		t = time.Now()
	}
	return c.Conn.SetReadDeadline(t)
}

// Read ends the session at its first read timeout. go-smtp would take a
// command cut short by the timeout for a whole one (bufio.ReadLine returns
// the partial line and drops the error), so a client sending one byte at a
// time would be answered bit by bit instead of dropped: it gets the reply
// to what it managed to send, then the connection is closed. Once a line
// over the limit has arrived, it fails at once (wire.go).
func (c *conn) Read(p []byte) (int, error) {
	if err := c.flush(); err != nil {
		return 0, err
	}
	if c.wire.long.Load() {
		return 0, smtp.ErrTooLongLine
	}
	if n := c.ahead.read(p); n > 0 {
		return n, nil
	}
	var n int
	var err error
	if c.busy.Load() && len(p) < aheadSize {
		n, err = c.ahead.fill(p, c.Conn.Read)
	} else {
		n, err = c.Conn.Read(p)
	}
	if err != nil && isTimeout(err) {
		if c.goodbye() {
			return n, io.EOF
		}
		c.hangUp.Store(true)
	}
	return n, err
}

// goodbye tells an idle client that the server is shutting down (RFC 5321
// 3.8), and reports whether it did: the read that drain woke up then ends
// the input, which go-smtp takes quietly. Left to itself, go-smtp would
// answer the timeout with "421 4.4.2 Idle timeout". The reply goes through
// what go-smtp writes to, TLS included, whose handshake is over by then;
// only an implicit-TLS client that has not said EHLO gets go-smtp's words.
// (A client caught in the middle of its STARTTLS handshake gets go-smtp's
// plaintext "550 Handshake error" whatever is done here.)
func (c *conn) goodbye() bool {
	if c.busy.Load() || !c.cs.isDraining() {
		return false
	}
	var face net.Conn = c
	if sc := c.session.Load(); sc != nil {
		face = sc.Conn()
	} else if c.implicitTLS {
		return false
	}
	if !c.saidBye.Swap(true) {
		face.Write([]byte("421 4.3.2 " + c.cs.hostname + " shutting down\r\n"))
	}
	return true
}

func (c *conn) Write(p []byte) (int, error) {
	c.wire.writes.Add(1)
	c.mu.Lock()
	c.out = append(c.out, p...)
	held := len(c.out)
	c.mu.Unlock()
	if c.hangUp.Load() {
		return len(p), c.Close()
	}
	if held >= flushAt {
		return len(p), c.flush()
	}
	return len(p), nil
}

// SetWriteDeadline sends the held replies first when the new deadline is
// (nearly) now: that is how a caller ends its writing — crypto/tls does it
// right after its close_notify alert — and the held 221 must not be caught
// by it. go-smtp's own deadlines, minutes away, leave the replies held.
func (c *conn) SetWriteDeadline(t time.Time) error {
	if !t.IsZero() && t.Before(time.Now().Add(time.Second)) {
		c.flush()
	}
	return c.Conn.SetWriteDeadline(t)
}

func (c *conn) flush() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.out) == 0 {
		return nil
	}
	c.sendingGoAhead()
	_, err := c.Conn.Write(c.out)
	c.out = c.out[:0]
	if cap(c.out) > 4<<10 {
		c.out = nil // an idle connection keeps no large buffer
	}
	return err
}

func (c *conn) Close() error {
	c.flush()
	err := c.Conn.Close()
	c.once.Do(func() {
		if c.onClose != nil {
			c.onClose()
		}
		c.cs.release(c)
		c.cs.log.Info("connection closed", "conn", c.id, "listener", c.listener,
			"remote", c.RemoteAddr().String(), "duration", time.Since(c.opened).Round(time.Millisecond))
	})
	return err
}

// listener applies the limits at accept time and, for the implicit-TLS
// port, wraps each connection in TLS (go-smtp does the handshake under its
// timeouts).
type listener struct {
	net.Listener
	cs       *conns
	name     string
	role     Role
	tls      *tls.Config // non-nil: implicit TLS
	hostname string
	metrics  *metrics.Metrics
	// serve serves a connection on a server of its own (Server.serveConn).
	serve func(net.Conn, *conn)
}

func (l *listener) Accept() (net.Conn, error) {
	for {
		raw, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		c := &conn{Conn: raw, cs: l.cs, id: l.cs.nextID.Add(1), listener: l.name, opened: time.Now(), implicitTLS: l.tls != nil}
		if ap, err := netip.ParseAddrPort(raw.RemoteAddr().String()); err == nil {
			c.ip = ap.Addr().Unmap()
		}
		if why := l.cs.admit(c, l.role != Relay); why != "" {
			l.cs.log.Warn("connection refused", "listener", l.name, "remote", raw.RemoteAddr().String(), "reason", why)
			l.metrics.Refused(why)
			go l.refuse(raw, why)
			continue
		}
		l.cs.log.Info("connection opened", "conn", c.id, "listener", l.name, "remote", raw.RemoteAddr().String())
		l.metrics.Connection(l.name)
		var nc net.Conn = c
		if l.tls != nil {
			nc = tls.Server(c, l.tls)
		}
		// go-smtp's Serve on the listener is only its accept loop: every
		// session has a server of its own.
		l.serve(nc, c)
	}
}

// refuse answers 421 and closes, off the accept loop so a flood cannot
// slow down accepting the clients that are within limits.
func (l *listener) refuse(raw net.Conn, why string) {
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(10 * time.Second))
	var w net.Conn = raw
	if l.tls != nil {
		tc := tls.Server(raw, l.tls)
		if tc.Handshake() != nil {
			return
		}
		w = tc
	}
	w.Write([]byte("421 4.7.0 " + l.hostname + " " + why + ", try again later\r\n"))
}

// tracked finds our conn under go-smtp's view of it (which is a *tls.Conn
// after STARTTLS or on the implicit-TLS port).
func tracked(nc net.Conn) *conn {
	for {
		switch c := nc.(type) {
		case *conn:
			return c
		case *tls.Conn:
			nc = c.NetConn()
		default:
			return nil
		}
	}
}
