package smtpd

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"facteur/internal/auth"
	"facteur/internal/dnsbl"
	"facteur/internal/header"
	"facteur/internal/maildir"
	"facteur/internal/queue"
	"facteur/internal/rspamd"
	"facteur/internal/users"
)

// backend creates the sessions of one role.
type backend struct {
	srv  *Server
	role Role
	auth bool // AUTH offered
}

func (b *backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	tc := tracked(c.Conn())
	if tc == nil {
		return nil, reply(421, 3, 0, "Internal error")
	}
	tc.session.Store(c)
	log := b.srv.log.With("conn", tc.id)
	return &session{srv: b.srv, role: b.role, auth: b.auth, c: c, conn: tc, log: log}, nil
}

// session is the policy side of one SMTP conversation; go-smtp does the
// protocol. A session is used by one goroutine at a time.
type session struct {
	srv      *Server
	role     Role
	auth     bool   // AUTH offered here
	authUser string // who logged in; "" before AUTH
	c        *smtp.Conn
	conn     *conn
	log      *slog.Logger
	listed   *dnsbl.Verdict // the blocklists' word on the client, once asked
	spam     []any          // rspamd's word on the message, for the log

	from      string
	eightBit  bool            // BODY=8BITMIME
	utf8      bool            // SMTPUTF8
	local     []delivery      // local copies, one per recipient address that has any
	remote    []string        // relayed recipients, as they are
	forward   []forward       // alias targets at other domains
	returns   []string        // the senders of the mail that bounces to our SRS addresses go back to
	dests     map[string]bool // every mailbox and address already taken, so each gets one copy
	rcpts     []string        // every accepted address, for the log and Received
	delivered []string        // the addresses whose copies get a Delivered-To field

	// Checked sessions only (see checks.go).
	spf         chan auth.SPF // the envelope's verdict, once ready
	stopSPF     context.CancelFunc
	message     *auth.Message // the message being checked as it streams
	verdict     *auth.Verdict // of the message, known at the end of DATA
	authResults string        // verdict as the Authentication-Results field
}

func (s *session) Reset() {
	s.spam = nil
	s.from, s.eightBit, s.utf8, s.rcpts = "", false, false, nil
	s.local, s.remote, s.forward, s.returns, s.dests, s.delivered = nil, nil, nil, nil, nil, nil
	if s.stopSPF != nil {
		s.stopSPF()
	}
	s.spf, s.stopSPF, s.message, s.verdict, s.authResults = nil, nil, nil, nil, ""
}

func (s *session) Logout() error {
	if s.stopSPF != nil {
		s.stopSPF()
	}
	return nil
}

func (s *session) Mail(from string, opts *smtp.MailOptions) error {
	if err := s.bareCommands(); err != nil {
		return err
	}
	switch {
	case s.role == Relay && !s.srv.opts.RelayAllowed(s.conn.ip):
		return s.refuse(errNoRelay, "client not in relay_networks", "from", from)
	case s.role == Submission && s.authUser == "" && !s.secure():
		return s.refuse(reply(530, 7, 0, "Must issue a STARTTLS command first"), "submission before TLS")
	case s.role == Submission && s.authUser == "":
		return s.refuse(reply(530, 7, 0, "Authentication required"), "submission without AUTH")
	}
	if err := s.spaceCheck(); err != nil {
		return err
	}
	if err := needUTF8(from, opts.UTF8); err != nil {
		return s.refuse(err, "8-bit address without SMTPUTF8", "from", printable(from))
	}
	if from != "" {
		local, domain, err := splitAddress(from)
		if err != nil {
			return s.refuse(err, "bad sender address", "from", printable(from))
		}
		// A user sends as themselves only: the address must be theirs
		// in the users map. The null sender (read receipts) is allowed.
		if s.authUser != "" && !s.owns(local, domain) {
			return s.refuse(reply(553, 7, 1, "Sender address <%s> is not owned by user %s", printable(from), s.authUser),
				"sender not owned by the user", "from", printable(from), "user", s.authUser)
		}
	}
	s.from = from
	s.eightBit = opts.Body == smtp.Body8BitMIME
	s.utf8 = opts.UTF8
	if s.checked() {
		s.startSPF(from)
	}
	return nil
}

func (s *session) owns(local, domain string) bool {
	mb, ok := s.srv.Users().Lookup(local, domain)
	return ok && mb == s.authUser
}

func (s *session) Rcpt(to string, opts *smtp.RcptOptions) error {
	if err := needUTF8(to, s.utf8); err != nil {
		return s.refuse(err, "8-bit address without SMTPUTF8", "rcpt", printable(to))
	}
	local, domain, perr := splitAddress(to)
	if perr != nil {
		return s.refuse(perr, "bad recipient address", "rcpt", printable(to))
	}
	u := s.srv.Users()
	if err := s.refuseListed(to, local, domain, u); err != nil {
		return err
	}
	if s.isSRS(local, domain, u) {
		return s.bounceBack(to, local)
	}
	if !u.IsLocalDomain(domain) && (s.role == Relay || s.authUser != "") {
		if s.take("addr " + strings.ToLower(to)) {
			s.remote = append(s.remote, to)
		}
		s.rcpts = append(s.rcpts, to)
		return nil
	}
	if !u.IsLocalDomain(domain) {
		return s.refuse(reply(550, 7, 1, "Relaying denied: %s is not a domain of this server", printable(domain)),
			"relaying denied", "rcpt", printable(to))
	}
	return s.expand(to, local, domain, u)
}

// untrusted tells whether the session's mail is checked: mail from the
// Internet is, mail from the relay's networks and logged-in users is not.
func (s *session) untrusted() bool { return s.role == Inbound && s.authUser == "" }

// refuseListed refuses every recipient of a client that a DNS blocklist
// names, except the postmaster of our domains: a listed sender must still
// be able to reach a human (RFC 5321 4.5.1).
func (s *session) refuseListed(to, local, domain string, u *users.Map) error {
	if strings.EqualFold(local, "postmaster") && u.IsLocalDomain(domain) {
		return nil
	}
	v := s.blocklists()
	if v == nil || v.Listed == nil {
		return nil
	}
	return s.refuse(toReply(v.Listed, ""), "client listed in a DNSBL", "rcpt", printable(to),
		"ip", v.Listed.IP, "zone", v.Listed.Zone, "code", v.Listed.Code)
}

// listTimeout bounds the blocklist lookups of one connection.
const listTimeout = 10 * time.Second

// blocklists looks the client up in the DNS blocklists once per
// connection, at its first recipient; nil when it is not to be checked.
// A list that cannot answer is logged and lists no one: the other checks
// still stand, and a DNS outage must not refuse all mail.
func (s *session) blocklists() *dnsbl.Verdict {
	lists := s.srv.opts.DNSBL
	if lists == nil || !s.untrusted() {
		return nil
	}
	if s.listed == nil {
		ctx, cancel := context.WithTimeout(context.Background(), listTimeout)
		v := lists.Check(ctx, s.conn.ip)
		cancel()
		for _, p := range v.Problems {
			s.log.Warn("dnsbl: a list did not answer, the client is not held as listed by it", "ip", s.conn.ip, "err", p)
		}
		s.srv.opts.Metrics.InboundVerdict("dnsbl", v.Result())
		s.listed = &v
	}
	return s.listed
}

// verdicts are the checks' words on the message, for its log line.
func (s *session) verdicts() []any {
	var attrs []any
	if v := s.blocklists(); v != nil {
		attrs = append(attrs, "dnsbl", v.Result())
	}
	if v := s.verdict; v != nil {
		attrs = append(attrs, v.LogAttrs()...)
	}
	return append(attrs, s.spam...)
}

func (s *session) Data(r io.Reader) error {
	// The server's drain leaves this session its time to finish.
	s.conn.busy.Store(true)
	defer s.conn.busy.Store(false)

	id := queue.NewID()
	t := trace{helo: s.c.Hostname(), ip: s.conn.ip, hostname: s.srv.opts.Hostname, id: id, at: time.Now(), auth: s.authUser != ""}
	if st, ok := s.c.TLSConnectionState(); ok {
		t.tls = &st
	}
	if len(s.rcpts) == 1 {
		t.rcpt = s.rcpts[0]
	}
	if err := s.spaceCheck(); err != nil {
		return err
	}
	r, dot := newDotReader(r, s.srv.opts.MaxMessageBytes)
	if dot != nil {
		defer dot.drain()
	}
	// Nothing is read before the turn comes, so the 354, held until the
	// next read (see conn.Write), waits for it too.
	st, tk := s.srv.turns.receive(s.srv.turns.take(false), r)
	defer st.release()
	if tk != nil {
		defer tk.give()
	}
	body := &counting{r: &strictCRLF{r: s.guarded(st.r)}}
	data := s.loopCheck(body)
	if s.authUser != "" {
		data = header.Watch(body, "From", s.checkFrom)
	}
	if s.checked() {
		ctx, cancel := context.WithTimeout(context.Background(), checkTimeout)
		defer cancel()
		s.message = s.srv.opts.Checks.Message(ctx, data)
		defer s.message.Close()
		data = s.message
	}
	if err := s.store(id, t.received(), data); err != nil {
		rep := toReply(err, id)
		if desync(err) {
			// The rest of the message may still be on its way: read as
			// commands, it could run a transaction hidden in the body
			// (smuggling by slowness). Hang up after the reply instead.
			s.conn.hangUp.Store(true)
		}
		s.log.Warn("message refused", append([]any{"id", id, "from", printable(s.from), "code", rep.Code,
			"reason", rep.Message, "err", err}, s.verdicts()...)...)
		s.srv.opts.Metrics.Refused(fmt.Sprintf("message refused %d %d.%d.%d", rep.Code,
			rep.EnhancedCode[0], rep.EnhancedCode[1], rep.EnhancedCode[2]))
		return rep
	}
	s.srv.opts.Metrics.Accepted(s.conn.listener, t.tls != nil)
	s.log.Info("message accepted", append([]any{"id", id, "from", printable(s.from),
		"rcpts", strings.Join(s.rcpts, ","), "size", body.n, "tls", t.tls != nil, "user", s.authUser}, s.verdicts()...)...)
	// go-smtp sends a non-nil SMTPError as the reply; this is how the 250
	// carries the queue id.
	return reply(250, 0, 0, "Ok: queued as %s", id)
}

// spamCheck is rspamd's look at a message from the Internet, once it is
// whole in tmp/; nil when there is none to take.
func (s *session) spamCheck(id string) maildir.Check {
	c := s.srv.opts.Rspamd
	if c == nil || !s.untrusted() {
		return nil
	}
	return func(msg io.Reader, size int64) (maildir.Verdict, error) {
		env := rspamd.Envelope{IP: s.conn.ip, Helo: s.c.Hostname(), From: s.from, Rcpts: s.rcpts, QueueID: id}
		r, err := c.Check(context.Background(), env, msg, size)
		if err == nil && !r.Known() {
			err = fmt.Errorf("rspamd: action %q is none of facteur's", r.Action)
		}
		if err != nil {
			s.spam = []any{"rspamd", "error"}
			s.srv.opts.Metrics.InboundVerdict("rspamd", "error")
			if s.srv.opts.RspamdTempfail {
				return maildir.Verdict{}, fmt.Errorf("%w: %v", errFilterDown, err)
			}
			s.log.Warn("rspamd gave no verdict: message taken unchecked (rspamd_on_error = \"accept\")", "id", id, "err", err)
			return maildir.Verdict{}, nil
		}
		s.spam = []any{"rspamd", r.Action, "score", r.Score}
		s.srv.opts.Metrics.InboundVerdict("rspamd", r.Action)
		if refusal := r.Refusal(); refusal != nil {
			return maildir.Verdict{}, refusal
		}
		v := maildir.Verdict{Edit: r.Edit}
		if r.Junk() {
			v.Folder = maildir.Junk
		}
		return v, nil
	}
}

// origin is how the session's mail enters the queue, which decides
// whether it is DKIM-signed.
func (s *session) origin() queue.Origin {
	switch {
	case s.authUser != "":
		return queue.FromSubmission
	case s.role == Relay:
		return queue.FromRelay
	}
	return queue.FromMX
}

// checkFrom holds a logged-in user to the From header as Mail holds them
// to the envelope sender: a DKIM signature of ours must never vouch for a
// From that is not the user's.
func (s *session) checkFrom(values []string) error {
	for _, v := range values {
		addrs, err := header.Addresses(v)
		if err != nil || len(addrs) == 0 {
			return reply(550, 6, 0, "Message refused: the From: header field does not parse as addresses")
		}
		for _, a := range addrs {
			local, domain, bad := splitAddress(a.Address)
			if bad != nil || !s.owns(local, domain) {
				return reply(553, 7, 1, "From: address <%s> is not owned by user %s", printable(a.Address), s.authUser)
			}
		}
	}
	return nil
}

// spaceCheck refuses new mail while the disk is below its free-space floor.
func (s *session) spaceCheck() error {
	if low := s.srv.opts.LowOnSpace; low != nil && low() {
		return s.refuse(errLowOnSpace, "disk below min_free_bytes")
	}
	return nil
}

// refuse logs a refused command and returns its reply.
func (s *session) refuse(rep *smtp.SMTPError, reason string, attrs ...any) error {
	s.log.Info("refused", append([]any{"code", rep.Code, "reason", reason}, attrs...)...)
	s.srv.opts.Metrics.Refused(reason)
	return rep
}

// counting counts the message bytes read, for the log.
type counting struct {
	r io.Reader
	n int64
}

func (c *counting) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
