// Package remote delivers messages to the mail servers of one domain over
// SMTP: it walks the MX hosts in order, upgrades with STARTTLS according to a
// policy, and reports one classified result per recipient. go-smtp's Client
// opens each session; the transactions on it are pipelined here (pipe.go).
package remote

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"time"

	"facteur/internal/mx"
	"facteur/internal/tlsrpt"
)

// Defaults for the zero values of Client's timeouts (RFC 5321 4.5.3.2 asks
// for 5 minutes on replies).
const (
	DefaultConnectTimeout = 30 * time.Second
	DefaultCommandTimeout = 5 * time.Minute
)

// Policy says what to do with STARTTLS.
type Policy int

const (
	// Opportunistic encrypts whenever offered, without checking the
	// certificate, and falls back to plaintext when the handshake fails.
	Opportunistic Policy = iota
	// Required encrypts without checking the certificate, and never sends
	// in plaintext.
	Required
	// Verify encrypts and checks the certificate against the MX host name.
	Verify
	// None never starts TLS.
	None
)

var policyNames = [...]string{"opportunistic", "required", "verify", "none"}

// ParsePolicy reads a policy as written in the configuration.
func ParsePolicy(s string) (Policy, error) {
	for i, name := range policyNames {
		if s == name {
			return Policy(i), nil
		}
	}
	return 0, fmt.Errorf("unknown TLS policy %q (want opportunistic, required, verify or none)", s)
}

func (p Policy) String() string {
	if p < 0 || int(p) >= len(policyNames) {
		return fmt.Sprintf("Policy(%d)", int(p))
	}
	return policyNames[p]
}

// Lookuper finds the hosts to deliver to; *mx.Resolver is one.
type Lookuper interface {
	Lookup(ctx context.Context, domain string) ([]mx.Host, error)
}

// Client delivers mail to remote domains. Its fields are set once; it is
// then safe for concurrent use, and must not be copied.
type Client struct {
	Resolver Lookuper
	Port     int            // outbound port; 0 means 25
	HeloName string         // our name in EHLO/HELO; "localhost" if empty
	TLS      Policy         // for every host, unless Policies decides
	RootCAs  *x509.CertPool // trusted by Verify; nil means the system pool

	// Policies, when set, decides each MX host's TLS (DANE, MTA-STS) in
	// place of TLS.
	Policies TLSPolicies
	// Sessions, when set, is told the TLS outcome of every new connection,
	// for TLS reports: the policy in force, and the failure if TLS could
	// not be had as the policy asks.
	Sessions func(domain string, s tlsrpt.Session)

	// IdleTimeout is how long a healthy session waits, after a Deliver call,
	// to carry the next one to the same address: zero means
	// DefaultIdleTimeout, negative ends every session at the end of its call.
	// Close ends the idle sessions.
	IdleTimeout time.Duration

	// DeadHostTime is how long a host address whose connection failed
	// (refused, timed out, a 421 greeting, the TLS its policy requires
	// failing) is not tried again: the messages of other calls to it are
	// held back meanwhile, as with Postfix's dead-host cache. Zero means
	// DefaultDeadHostTime, negative never holds back.
	DeadHostTime time.Duration

	ConnectTimeout time.Duration // zero means DefaultConnectTimeout
	CommandTimeout time.Duration // each reply, the one after the final dot included; zero means DefaultCommandTimeout

	// NoPipelining sends each command only after the reply to the one
	// before, even to a server that offers PIPELINING: for the rare server
	// that offers it and mishandles it (Postfix's smtp_pipelining_enable).
	NoPipelining bool

	Log *slog.Logger // nil discards; at debug level, each session's dialogue too

	pool     idlePool
	dead     deadHosts
	sessions atomic.Uint64 // numbers the sessions in the debug log
}

// Message is one message to deliver, with its recipients at one domain.
// Addresses are in their unquoted form ("john doe@example.org"), as go-smtp's
// server hands them over; they are quoted on the wire when needed.
type Message struct {
	ID    string // queue id, for logs
	From  string // "" is the null sender
	Rcpts []string
	Size  int64
	// Open returns the message bytes with CRLF line endings; it is called
	// once per attempt and the result closed after.
	Open func() (io.ReadCloser, error)

	EightBit bool // the body needs 8BITMIME
	SMTPUTF8 bool // the message needs SMTPUTF8 (non-ASCII addresses always do)

	// TLSReport: the message is a TLS report. A session that carries only
	// reports is not told to Client.Sessions, so that a report on a domain
	// whose servers fail TLS does not add to the next one: RFC 8460 asks
	// that the delivery of reports not be reported.
	TLSReport bool
}

// Status is the outcome for one recipient.
type Status int

const (
	// Sent: a server took responsibility for the message.
	Sent Status = iota + 1
	// Transient: try again later.
	Transient
	// Permanent: give up and bounce.
	Permanent
)

func (s Status) String() string {
	switch s {
	case Sent:
		return "sent"
	case Transient:
		return "transient"
	case Permanent:
		return "permanent"
	}
	return fmt.Sprintf("Status(%d)", int(s))
}

// Result is the outcome of one recipient of one message.
type Result struct {
	Rcpt     string
	Status   Status
	Code     int    // the remote reply code; 0 when the result is our own decision
	Enhanced string // RFC 3463 status such as "5.1.1"; "" if the server gave none
	Text     string // the remote reply text, or our reason
	Host     string // the MX host the result came from, "" if none was reached
	TLS      bool   // the session with Host was encrypted
	// TLSPolicy names the policy the session with Host was held under:
	// "dane", "mta-sts", or the configured Policy's name.
	TLSPolicy string
}

func (c *Client) connectTimeout() time.Duration {
	if c.ConnectTimeout > 0 {
		return c.ConnectTimeout
	}
	return DefaultConnectTimeout
}

func (c *Client) commandTimeout() time.Duration {
	if c.CommandTimeout > 0 {
		return c.CommandTimeout
	}
	return DefaultCommandTimeout
}

func (c *Client) port() uint16 {
	if c.Port > 0 {
		return uint16(c.Port)
	}
	return 25
}

func (c *Client) helo() string {
	if c.HeloName != "" {
		return c.HeloName
	}
	return "localhost"
}

func (c *Client) log() *slog.Logger {
	if c.Log != nil {
		return c.Log
	}
	return slog.New(slog.DiscardHandler)
}
