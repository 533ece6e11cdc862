package smtptest

import (
	"crypto/tls"
	"io"
	"log"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// MXOptions shape how a fake MX behaves.
type MXOptions struct {
	TLS *tls.Config // offered with STARTTLS; nil offers no STARTTLS

	// Replies to MAIL, RCPT and the end of DATA; nil, or a nil result, accepts.
	MailReply func(from string) *smtp.SMTPError
	RcptReply func(rcpt string) *smtp.SMTPError
	DataReply func() *smtp.SMTPError

	Greeting421 bool  // answer every connection with a 421 greeting and hang up
	NoSMTPUTF8  bool  // do not advertise SMTPUTF8
	MaxSize     int64 // advertised in SIZE and enforced; 0 means no limit
	NoData      bool  // record messages without their Data, for benchmarks

	// No8BitMIME hides 8BITMIME from the EHLO reply. go-smtp always
	// advertises it, so this filters the reply on the wire, which works only
	// on plaintext sessions: combined with TLS it has no effect after STARTTLS.
	No8BitMIME bool
}

// Received is one message a fake MX accepted.
type Received struct {
	From string
	To   []string
	Data []byte
	TLS  bool   // the session was encrypted
	Helo string // the name the client gave in EHLO/HELO

	Size int64         // SIZE= of MAIL, 0 if absent
	Body smtp.BodyType // BODY= of MAIL, "" if absent
	UTF8 bool          // MAIL carried SMTPUTF8
}

// MX is a fake remote mail server on go-smtp's server.
type MX struct {
	t    testing.TB
	addr string
	opts MXOptions

	mu    sync.Mutex
	srv   *smtp.Server
	msgs  []Received
	conns int
}

// NewMX starts a fake MX on ip:port (port 0 picks one), stopped by t.Cleanup.
func NewMX(t testing.TB, ip string, port int, opts MXOptions) *MX {
	t.Helper()
	m := &MX{t: t, addr: net.JoinHostPort(ip, strconv.Itoa(port)), opts: opts}
	m.Start()
	t.Cleanup(m.Stop)
	return m
}

// Start brings the server (back) up on its address.
func (m *MX) Start() {
	m.t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.srv != nil {
		return
	}
	l, err := net.Listen("tcp", m.addr)
	if err != nil {
		m.t.Fatalf("smtptest: MX listen: %v", err)
	}
	// Keep the real port so that Start after Stop reuses it with port 0.
	m.addr = l.Addr().String()

	srv := smtp.NewServer(smtp.BackendFunc(m.newSession))
	srv.Domain, _, _ = net.SplitHostPort(m.addr)
	srv.TLSConfig = m.opts.TLS
	srv.EnableSMTPUTF8 = !m.opts.NoSMTPUTF8
	srv.MaxMessageBytes = m.opts.MaxSize
	srv.ErrorLog = log.New(io.Discard, "", 0)
	m.srv = srv
	go srv.Serve(&mxListener{Listener: l, m: m})
}

// Stop takes the server down, closing every open connection.
func (m *MX) Stop() {
	m.mu.Lock()
	srv := m.srv
	m.srv = nil
	m.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

// Port is the TCP port the server listens on.
func (m *MX) Port() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, port, _ := net.SplitHostPort(m.addr)
	n, _ := strconv.Atoi(port)
	return n
}

// Messages returns the accepted messages, oldest first.
func (m *MX) Messages() []Received {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Received(nil), m.msgs...)
}

// Count is the number of accepted messages.
func (m *MX) Count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.msgs)
}

// Connections is the number of connections accepted, including refused greetings.
func (m *MX) Connections() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.conns
}

// Wait fails the test unless n messages have arrived within timeout. The
// timeout is a deadline for a failing test, not a speed requirement.
func (m *MX) Wait(t testing.TB, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for m.Count() < n {
		if time.Now().After(deadline) {
			t.Fatalf("smtptest: MX %s got %d messages, want %d within %v", m.addr, m.Count(), n, timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (m *MX) record(r Received) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.msgs = append(m.msgs, r)
}

func (m *MX) newSession(c *smtp.Conn) (smtp.Session, error) {
	return &mxSession{m: m, conn: c}, nil
}

// mxListener counts connections and applies the options that go-smtp's
// server cannot express.
type mxListener struct {
	net.Listener
	m *MX
}

func (l *mxListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		l.m.mu.Lock()
		l.m.conns++
		l.m.mu.Unlock()
		if l.m.opts.Greeting421 {
			c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			io.WriteString(c, "421 4.3.2 fake MX not accepting mail\r\n")
			c.Close()
			continue
		}
		if l.m.opts.No8BitMIME {
			c = &no8BitMIME{Conn: c}
		}
		return c, nil
	}
}
