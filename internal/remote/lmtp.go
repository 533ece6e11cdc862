package remote

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"facteur/internal/smtplog"
)

// LMTP hands messages to a mailbox server over LMTP (RFC 2033), such as
// Dovecot's lmtp service. It speaks with the code that speaks SMTP to MX
// hosts: go-smtp's Client greets (LHLO), and the transactions are
// facteur's, pipelined the same way (transact). The difference is at the
// end: after the final dot the server answers once per recipient it took,
// and each answer is that recipient's result alone. Each Deliver call has
// its own connection.
type LMTP struct {
	// Address is where the server listens: "unix:/run/dovecot/lmtp" or
	// "host:port"; see ParseLMTPAddress.
	Address  string
	HeloName string // our name in LHLO; "localhost" if empty

	ConnectTimeout time.Duration // zero means DefaultConnectTimeout
	CommandTimeout time.Duration // zero means DefaultCommandTimeout
	Log            *slog.Logger  // nil discards; at debug level, each session's dialogue too
}

// ParseLMTPAddress reads where an LMTP server listens: "unix:" and an
// absolute socket path, or a host and port.
func ParseLMTPAddress(s string) (network, address string, err error) {
	if path, ok := strings.CutPrefix(s, "unix:"); ok {
		if !filepath.IsAbs(path) {
			return "", "", fmt.Errorf("%q: the socket path must be absolute", s)
		}
		return "unix", path, nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", "", fmt.Errorf("%q is neither unix:/path nor host:port", s)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || host == "" {
		return "", "", fmt.Errorf("%q is neither unix:/path nor host:port", s)
	}
	return "tcp", s, nil
}

// Deliver delivers msgs and returns one Result per recipient per message:
// out[i][j] is for msgs[i].Rcpts[j]. A server that cannot be reached
// leaves every recipient transient.
func (l *LMTP) Deliver(ctx context.Context, msgs []*Message) [][]Result {
	d := newDelivery(msgs, lmtpPath)
	if !d.pending() {
		return d.out
	}
	// A Client with no pool: transact and run as for SMTP, and the
	// session ends with its call.
	c := &Client{HeloName: l.HeloName, IdleTimeout: -1, ConnectTimeout: l.ConnectTimeout,
		CommandTimeout: l.CommandTimeout, Log: l.Log}
	s, err := l.connect(ctx, c)
	if err != nil {
		r := connectResult(err)
		r.Host, r.Text = l.Address, l.Address+": "+r.Text
		c.log().Info("no LMTP session", "ids", d.openIDs(), "err", r.Text)
		d.failOpen(r)
	} else {
		c.run(s, d)
	}
	if err := ctx.Err(); err != nil {
		d.failOpen(Result{Status: Transient, Enhanced: "4.4.7", Text: "delivery interrupted: " + err.Error()})
	}
	d.finishOpen()
	return d.out
}

func (l *LMTP) connect(ctx context.Context, c *Client) (*session, error) {
	network, address, err := ParseLMTPAddress(l.Address)
	if err != nil {
		return nil, err
	}
	dl := net.Dialer{Timeout: c.connectTimeout()}
	raw, err := dl.DialContext(ctx, network, address)
	if err != nil {
		return nil, err
	}
	s := &session{raw: raw, host: l.Address, lmtp: true}
	if log := c.log(); log.Enabled(ctx, slog.LevelDebug) {
		s.dialogue = smtplog.New(log.With("host", l.Address, "session", c.sessions.Add(1)))
	}
	s.conn = s.logged(raw)
	s.bind(ctx)
	s.cl = smtp.NewClientLMTP(s.conn)
	s.cl.CommandTimeout = c.commandTimeout()
	if err := s.cl.Hello(c.helo()); err != nil {
		s.close()
		var reply *smtp.SMTPError
		if !errors.As(err, &reply) {
			err = fmt.Errorf("LHLO: %w", err)
		}
		return nil, err
	}
	return s.ready(c), nil
}

// lmtpPath is path for an LMTP recipient, which may be a user name alone:
// Dovecot, for one, takes "alice" as well as "alice@example.org".
func lmtpPath(rcpt string) (string, error) {
	if rcpt == "" || strings.Contains(rcpt, "@") {
		return path(rcpt)
	}
	p, err := path(rcpt + "@")
	return strings.TrimSuffix(p, "@"), err
}

// lmtpReplies reads the replies after the final dot of message i, one per
// recipient the server took (RFC 2033 4.2), each the result of its own
// recipient. It reports whether the session can go on.
func (s *session) lmtpReplies(d *delivery, i int, accepted []int) bool {
	for k, j := range accepted {
		r := s.final()
		d.decide(i, j, r)
		if r.fatal() {
			for _, rest := range accepted[k+1:] {
				d.decide(i, rest, r)
			}
			return false
		}
	}
	return true
}
