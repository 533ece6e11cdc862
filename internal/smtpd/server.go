// Package smtpd holds the SMTP listeners and sessions of both roles: the
// policy (who may send what to whom), the limits, and the hand-off of each
// message to durable storage before the 250. The protocol itself is
// emersion/go-smtp's.
package smtpd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"

	"facteur/internal/aliases"
	"facteur/internal/auth"
	"facteur/internal/dnsbl"
	"facteur/internal/maildir"
	"facteur/internal/metrics"
	"facteur/internal/queue"
	"facteur/internal/rspamd"
	"facteur/internal/smtplog"
	"facteur/internal/srs"
	"facteur/internal/users"
)

// Role is what a listener is for.
type Role int

const (
	// Inbound is the MX role: mail for local users only.
	Inbound Role = iota
	// Relay takes mail for anywhere from trusted networks.
	Relay
	// Submission takes mail for anywhere from authenticated users only
	// (RFC 6409).
	Submission
)

// Authenticator checks a login; *passwd.DB is one.
type Authenticator interface {
	Check(user, password string) bool
}

// Deliverer stores a message into local Maildirs; *maildir.Store is one.
type Deliverer interface {
	Deliver(mailboxes []string, header []byte, body io.Reader, check maildir.Check) ([]string, error)
}

// Spooler keeps mail for remote delivery; *queue.Queue is one.
type Spooler interface {
	Enqueue(m queue.Message, header []byte, body io.Reader, also func(stored io.Reader) error) error
}

// Options are fixed for the life of a Server.
type Options struct {
	Hostname string
	Maildir  Deliverer
	Queue    Spooler // nil: no relay listener
	// QueueLocal has the local copies queued like remote mail, for the
	// queue to deliver (over LMTP), rather than stored in the Maildirs
	// before the 250. Queue must be set.
	QueueLocal      bool
	TLS             *tls.Config // nil: no STARTTLS, no implicit TLS listener
	MaxMessageBytes int64
	MaxRecipients   int
	MaxLineBytes    int
	Timeout         time.Duration
	MaxConns        int
	MaxConnsPerIP   int
	RelayAllowed    func(netip.Addr) bool
	// LowOnSpace reports whether the disks mail is written to are below
	// their free-space floor (limits.min_free_bytes). While they are, MAIL
	// and DATA get 452 4.3.1, so a message is refused before it is taken
	// rather than half-written. Nil: never.
	LowOnSpace func() bool
	// PlaintextAuth tells whether a client may log in without TLS;
	// nil means loopback clients only.
	PlaintextAuth func(netip.Addr) bool
	// AuthFailDelay is the pause before answering a failed login, times
	// the failures in a row from that address (capped at ten times).
	AuthFailDelay time.Duration
	// Checks judges the senders of the mail that the MX listeners take
	// from clients that did not log in (SPF, DKIM, DMARC); nil: none.
	Checks *auth.Checker
	// CheckMode is what the verdicts may do ([inbound] dmarc).
	CheckMode auth.Mode
	// DNSBL are the blocklists a client of the MX listeners is looked up
	// in; nil: none.
	DNSBL *dnsbl.Lists
	// Rspamd checks every message of the MX listeners; nil: none. When it
	// gives no verdict, the message is taken unchecked, or refused for
	// now (451 4.7.1) if RspamdTempfail.
	Rspamd         *rspamd.Client
	RspamdTempfail bool
	Metrics        *metrics.Metrics // nil: not counted
	Log            *slog.Logger
	// RecipientDelimiter separates a local part from its tag ("alice+news"
	// is alice's); "" turns tags off.
	RecipientDelimiter string
	// SRS rewrites the sender of the mail forwarded to other domains, and
	// reads the bounces to those addresses back; nil: the sender is kept.
	SRS *srs.Rewriter
	// Storing is how many messages are stored at once, the others
	// waiting their turn (see stage.go); 0 is 32 per core.
	Storing int
	// ScratchDir holds, unlinked, the copy a message is read from when it
	// is stored in several forms; "" is the system's temporary folder.
	ScratchDir string
}

// Server runs every listener of the process.
type Server struct {
	opts  Options
	log   *slog.Logger
	cs    *conns
	users atomic.Pointer[users.Map]
	alias atomic.Pointer[aliases.Table]
	auth  atomic.Pointer[Authenticator]
	fails failures
	turns *turns // to store a message

	mu      sync.Mutex
	servers map[serverKey]*smtp.Server
	ls      []*listener
	// sessions are the servers of single sessions (see serveConn);
	// Shutdown stops them with the others.
	sessions map[*smtp.Server]struct{}
}

type serverKey struct {
	role        Role
	implicitTLS bool
}

// New makes a server that accepts mail for the users of u.
func New(opts Options, u *users.Map) *Server {
	if opts.PlaintextAuth == nil {
		opts.PlaintextAuth = netip.Addr.IsLoopback
	}
	s := &Server{opts: opts, log: opts.Log, servers: map[serverKey]*smtp.Server{}, sessions: map[*smtp.Server]struct{}{},
		turns: newTurns(opts.Storing)}
	s.cs = newConns(opts.MaxConns, opts.MaxConnsPerIP, opts.Hostname, opts.Log)
	s.users.Store(u)
	return s
}

// SetPasswords swaps the accounts that AUTH checks.
func (s *Server) SetPasswords(a Authenticator) { s.auth.Store(&a) }

func (s *Server) passwords() Authenticator {
	if a := s.auth.Load(); a != nil {
		return *a
	}
	return noAccounts{}
}

type noAccounts struct{}

func (noAccounts) Check(string, string) bool { return false }

// Users is the users map in force.
func (s *Server) Users() *users.Map { return s.users.Load() }

// SetUsers swaps the users map; sessions see it from their next command.
func (s *Server) SetUsers(u *users.Map) { s.users.Store(u) }

// Aliases are the aliases in force; nil is none.
func (s *Server) Aliases() *aliases.Table { return s.alias.Load() }

// SetAliases swaps the aliases; sessions see them from their next command.
func (s *Server) SetAliases(a *aliases.Table) { s.alias.Store(a) }

// Listen binds addr for a role. It only binds: Serve starts accepting, so
// that a start-up fails before any mail is taken if one address is taken.
func (s *Server) Listen(name string, role Role, implicitTLS bool, addr string) (net.Addr, error) {
	if implicitTLS && s.opts.TLS == nil {
		return nil, fmt.Errorf("listen %s %s: implicit TLS needs a certificate", name, addr)
	}
	if role != Inbound && s.opts.Queue == nil {
		return nil, fmt.Errorf("listen %s %s: the relay role needs a queue", name, addr)
	}
	// No TCP keep-alive: every session has its own read and write
	// deadlines (limits.timeout), which end a dead peer's session sooner,
	// and turning it on cost four setsockopt calls per connection.
	lc := net.ListenConfig{KeepAlive: -1}
	l, err := lc.Listen(context.Background(), "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s %s: %w", name, addr, err)
	}
	key := serverKey{role, implicitTLS}
	ll := &listener{Listener: l, cs: s.cs, name: name, role: role, hostname: s.opts.Hostname, metrics: s.opts.Metrics,
		serve: func(nc net.Conn, c *conn) { s.serveConn(key, nc, c) }}
	if implicitTLS {
		ll.tls = s.opts.TLS
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ls = append(s.ls, ll)
	if s.servers[key] == nil {
		// AUTH is for submission and for the implicit-TLS port (RFC 8314).
		s.servers[key] = s.newSMTP(&backend{srv: s, role: role, auth: role == Submission || implicitTLS})
	}
	return l.Addr(), nil
}

func (s *Server) newSMTP(b smtp.Backend) *smtp.Server {
	srv := smtp.NewServer(b)
	srv.Domain = s.opts.Hostname
	srv.TLSConfig = s.opts.TLS
	srv.MaxMessageBytes = s.opts.MaxMessageBytes
	srv.MaxRecipients = s.opts.MaxRecipients
	srv.MaxLineLength = 0 // the connection guard's (wire.go)
	srv.ReadTimeout = s.opts.Timeout
	srv.WriteTimeout = s.opts.Timeout
	srv.EnableSMTPUTF8 = true
	// The session decides where AUTH may be used (TLS, or loopback):
	// go-smtp's own rule would forbid loopback without TLS.
	srv.AllowInsecureAuth = true
	srv.ErrorLog = slogPrinter{s.log}
	return srv
}

// Serve accepts on every bound listener until Shutdown; it returns at once.
func (s *Server) Serve() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.ls {
		srv := s.servers[serverKey{l.role, l.tls != nil}]
		go func() {
			if err := srv.Serve(l); err != nil && !errors.Is(err, net.ErrClosed) {
				s.log.Error("listener stopped", "listener", l.name, "err", err)
			}
		}()
	}
}

// serveConn serves one connection on a server of its own, whose Debug
// writer is the connection guard (wire.go) and, while the log level is
// debug, logs the dialogue: go-smtp gives a server one Debug writer for
// all its connections, and it is the only place above TLS where a
// session's bytes can be read.
func (s *Server) serveConn(key serverKey, nc net.Conn, c *conn) {
	tap := &wireTap{c: c, data: key.role == Inbound, maxLine: s.opts.MaxLineBytes}
	// The level is looked at once per session.
	if s.log.Enabled(context.Background(), slog.LevelDebug) {
		tap.dialogue = dialogueTap{smtplog.New(s.log.With("conn", c.id))}
	}
	s.mu.Lock()
	srv := s.newSMTP(s.servers[key].Backend)
	srv.Debug = tap
	s.sessions[srv] = struct{}{}
	s.mu.Unlock()
	c.onClose = func() {
		s.mu.Lock()
		delete(s.sessions, srv)
		s.mu.Unlock()
	}
	// Serve starts the session's goroutine and returns at the second
	// Accept: a goroutine per session waiting for the end of its only
	// connection would be a stack per session for nothing. Shutdown still
	// waits for the session, which go-smtp counts from the first Accept.
	srv.Serve(&oneConn{conn: nc})
}

// Shutdown stops accepting, closes idle sessions with a 421 4.3.2, and lets the
// sessions that are receiving a message finish until ctx ends; then it
// closes what is left (their clients get no 250, so they will retry).
func (s *Server) Shutdown(ctx context.Context) error {
	s.cs.drain()
	s.mu.Lock()
	servers := make([]*smtp.Server, 0, len(s.servers)+len(s.sessions))
	for _, srv := range s.servers {
		servers = append(servers, srv)
	}
	for srv := range s.sessions {
		servers = append(servers, srv)
	}
	s.mu.Unlock()
	var wg sync.WaitGroup
	var forced atomic.Bool
	for _, srv := range servers {
		wg.Go(func() {
			if err := srv.Shutdown(ctx); errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
				forced.Store(true)
				srv.Close()
			}
		})
	}
	wg.Wait()
	if forced.Load() {
		return errors.New("shutdown: grace period over, remaining sessions closed")
	}
	return nil
}

// Conns is the number of open client connections.
func (s *Server) Conns() int { return s.cs.count() }

// slogPrinter takes go-smtp's log lines into our log. They are about
// clients that broke off (reset, failed handshake): worth seeing, not a
// warning about the server.
type slogPrinter struct{ log *slog.Logger }

func (p slogPrinter) Printf(format string, v ...any) { p.log.Info(fmt.Sprintf(format, v...)) }
func (p slogPrinter) Println(v ...any)               { p.log.Info(fmt.Sprint(v...)) }
