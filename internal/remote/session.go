package remote

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"net/textproto"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"facteur/internal/smtplog"
)

// session is one SMTP connection to one address of an MX host, greeted and
// with TLS settled. It belongs to one Deliver call at a time, or to the idle
// pool in between.
type session struct {
	cl     *smtp.Client
	conn   net.Conn // under cl: TCP or TLS (logged, see logged); for write deadlines and aborts
	raw    net.Conn // the TCP connection, closed to interrupt a command
	wire   wire     // on conn, for transactions (see pipe.go)
	key    poolKey
	host   string
	addr   netip.Addr
	tls    bool
	policy string            // HostTLS.name() of the policy the session was opened under
	audit  error             // what HostTLS.Audit found wrong with the session's TLS
	dirty  bool              // a transaction may be open: the next one starts with RSET
	after  func(Result) bool // takes the reply to a final dot not read yet
	stop   func() bool       // unbinds from the Deliver call's context; nil when idle
	closed bool              // dropped: no QUIT
	lmtp   bool              // an LMTP session: one reply per recipient after the dot
	// failure is how the server ended the session (a 421, a lost
	// connection): the reason its messages not yet tried are held back.
	failure Result

	// pipelining: the server offers PIPELINING and the Client may use it.
	pipelining bool

	// reused: taken from the idle pool, and the server has not answered
	// since. If its first answer is a hang-up or a 421, the server closed
	// the idle session meanwhile: stale is set, and nothing is recorded
	// against the host, since nothing can have been delivered.
	reused, stale bool
	idleSince     time.Time

	// dialogue logs the session's commands and replies; nil unless the
	// log level was debug when it began.
	dialogue *smtplog.Dialogue
}

// errNoSTARTTLS: the policy wants TLS and the host does not offer it.
var errNoSTARTTLS = errors.New("TLS required but STARTTLS not offered")

// tlsError is a failed STARTTLS; with Opportunistic the host is tried again
// in plaintext. local is our end of the connection, for TLS reports.
type tlsError struct {
	err   error
	local netip.Addr
}

func (e *tlsError) Error() string { return "STARTTLS failed: " + e.err.Error() }
func (e *tlsError) Unwrap() error { return e.err }

// connect opens a session with addr of host, secured as ht says. A reply
// error from the greeting or EHLO comes back as *smtp.SMTPError.
func (c *Client) connect(ctx context.Context, host string, addr netip.Addr, ht HostTLS) (*session, error) {
	policy := ht.Mode
	d := net.Dialer{Timeout: c.connectTimeout()}
	raw, err := d.DialContext(ctx, "tcp", netip.AddrPortFrom(addr, c.port()).String())
	if err != nil {
		return nil, err
	}
	s := &session{raw: raw, key: c.poolKey(host, addr, ht), host: host, addr: addr, policy: ht.name()}
	if log := c.log(); log.Enabled(ctx, slog.LevelDebug) {
		s.dialogue = smtplog.New(log.With("host", host, "addr", addr, "session", c.sessions.Add(1)))
	}
	s.conn = s.logged(raw)
	s.bind(ctx)
	s.cl = c.newSMTP(s.conn)
	if err := s.cl.Hello(c.helo()); err != nil {
		s.close()
		return nil, err
	}
	if policy == None {
		return s.ready(c), nil
	}
	if ok, _ := s.cl.Extension("STARTTLS"); !ok {
		if policy == Opportunistic {
			return s.ready(c), nil
		}
		s.close()
		return nil, errNoSTARTTLS
	}
	tc, err := c.startTLS(ctx, s, ht)
	if err != nil {
		s.close()
		return nil, &tlsError{err: err, local: s.local()}
	}
	s.conn, s.tls = s.logged(tc), true
	if ht.Audit != nil {
		s.audit = ht.Audit(host, tc.ConnectionState())
	}
	s.cl = c.newSMTP(&greeted{Conn: s.conn, pending: []byte("220 " + host + " TLS started\r\n")})
	if err := s.cl.Hello(c.helo()); err != nil {
		s.close()
		return nil, err
	}
	return s.ready(c), nil
}

// ready sets up the wire once the session is greeted on its final
// connection.
func (s *session) ready(c *Client) *session {
	s.wire = newWire(s.conn, c.commandTimeout())
	ok, _ := s.cl.Extension("PIPELINING")
	s.pipelining = ok && !c.NoPipelining
	return s
}

func (c *Client) newSMTP(conn net.Conn) *smtp.Client {
	cl := smtp.NewClient(conn)
	cl.CommandTimeout = c.commandTimeout()
	return cl
}

// startTLS sends STARTTLS on s and does the handshake. go-smtp v0.25 keeps
// its STARTTLS unexported except through NewClientStartTLS, which would say
// "EHLO localhost" and hang up on servers without STARTTLS; so the verb is
// sent here and a new go-smtp Client is started on the TLS connection.
func (c *Client) startTLS(ctx context.Context, s *session, ht HostTLS) (*tls.Conn, error) {
	raw := s.raw
	raw.SetDeadline(time.Now().Add(c.commandTimeout()))
	defer raw.SetDeadline(time.Time{})
	if _, err := io.WriteString(s.conn, "STARTTLS\r\n"); err != nil {
		return nil, err
	}
	// The server sends nothing after its 220 until our ClientHello, so this
	// reader cannot swallow bytes that belong to TLS.
	if _, _, err := textproto.NewReader(bufio.NewReader(s.conn)).ReadResponse(220); err != nil {
		return nil, err
	}
	tc := tls.Client(raw, c.tlsConfig(s.host, ht))
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, err
	}
	return tc, nil
}

func (c *Client) tlsConfig(host string, ht HostTLS) *tls.Config {
	cfg := &tls.Config{ServerName: serverName(host), MinVersion: tls.VersionTLS12}
	switch {
	case ht.Mode == Verify:
		cfg.RootCAs = c.RootCAs
	case ht.Check != nil:
		// The policy's own check (DANE) replaces the WebPKI's, which would
		// refuse the self-signed certificates TLSA records pin.
		cfg.InsecureSkipVerify = true
		cfg.VerifyConnection = func(cs tls.ConnectionState) error { return ht.Check(host, cs) }
	default:
		// Unauthenticated TLS still defeats passive eavesdropping, and MX
		// certificates are too often self-signed to insist (RFC 7435).
		cfg.InsecureSkipVerify = true
	}
	return cfg
}

// local is our address on the session's connection.
func (s *session) local() netip.Addr {
	if a, ok := s.raw.LocalAddr().(*net.TCPAddr); ok {
		return a.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}

// stamp marks r as coming from the session's host.
func (s *session) stamp(r Result) Result {
	r.Host, r.TLS, r.TLSPolicy = s.host, s.tls, s.policy
	return r
}

// serverName is the name to verify: the MX host name, or the address of a
// domain literal such as "[IPv6:2001:db8::1]".
func serverName(host string) string {
	if inner, ok := strings.CutPrefix(host, "["); ok {
		inner = strings.TrimSuffix(inner, "]")
		if len(inner) > 5 && strings.EqualFold(inner[:5], "IPv6:") {
			inner = inner[5:]
		}
		return inner
	}
	return host
}

// quitTimeout bounds the wait for the reply to QUIT, which decides nothing.
const quitTimeout = 5 * time.Second

// quit ends the session politely, unless it was already dropped (a body
// that could not be read, a 354 left unanswered).
func (s *session) quit() {
	if !s.closed {
		s.cl.CommandTimeout = min(s.cl.CommandTimeout, quitTimeout)
		s.cl.Quit()
	}
	s.close()
}

func (s *session) close() {
	s.closed = true
	s.unbind()
	s.cl.Close()
}

// bind makes the end of ctx interrupt the session: go-smtp bounds each reply
// with deadlines but knows no context, so closing the connection is what
// interrupts it.
func (s *session) bind(ctx context.Context) {
	raw := s.raw
	s.stop = context.AfterFunc(ctx, func() { raw.Close() })
}

// unbind detaches the session from its context, and reports whether the
// connection is still open, that is, the context did not close it first.
func (s *session) unbind() bool {
	if s.stop == nil {
		return true
	}
	ok := s.stop()
	s.stop = nil
	return ok
}

// logged is conn with the dialogue read off it, when there is one: above
// TLS, so that the log shows commands and replies.
func (s *session) logged(conn net.Conn) net.Conn {
	if s.dialogue == nil {
		return conn
	}
	return &loggedConn{Conn: conn, d: s.dialogue}
}

type loggedConn struct {
	net.Conn
	d *smtplog.Dialogue
}

func (l *loggedConn) Read(p []byte) (int, error) {
	n, err := l.Conn.Read(p)
	l.d.Replies(p[:n])
	return n, err
}

func (l *loggedConn) Write(p []byte) (int, error) {
	n, err := l.Conn.Write(p)
	l.d.Commands(p[:n])
	return n, err
}

// greeted replays a greeting before the connection's data: go-smtp's Client
// begins by reading one, and a server sends none after STARTTLS.
type greeted struct {
	net.Conn
	pending []byte
}

func (g *greeted) Read(p []byte) (int, error) {
	if len(g.pending) > 0 {
		n := copy(p, g.pending)
		g.pending = g.pending[n:]
		return n, nil
	}
	return g.Conn.Read(p)
}
