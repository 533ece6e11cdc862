package smtpd

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"facteur/internal/durable"
	"facteur/internal/maildir"
	"facteur/internal/queue"
	"facteur/internal/tlsconf"
	"facteur/internal/users"
)

// env is one server on loopback with a real Maildir and a real certificate.
type env struct {
	srv     *Server
	root    string // maildir root
	smtp    string // address of the plain listener
	smtps   string
	relay   string
	submit  string
	queue   *memQueue
	clientT *tls.Config // verifies the server certificate
}

// memQueue stands in for the spool: it keeps what it is given.
type memQueue struct {
	mu   sync.Mutex
	msgs []queuedMsg
}

type queuedMsg struct {
	m    queue.Message
	data string
}

func (q *memQueue) Enqueue(m queue.Message, header []byte, body io.Reader, also func(io.Reader) error) error {
	b, err := io.ReadAll(body)
	if err != nil {
		return err
	}
	data := string(header) + string(b)
	if also != nil {
		if err := also(strings.NewReader(data)); err != nil {
			return err
		}
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.msgs = append(q.msgs, queuedMsg{m, data})
	return nil
}

func (q *memQueue) all() []queuedMsg {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]queuedMsg(nil), q.msgs...)
}

// accounts is a passwords file in memory.
type accounts map[string]string

func (a accounts) Check(user, password string) bool {
	p, ok := a[user]
	return ok && p == password
}

type envOpt func(*Options)

func newEnv(t *testing.T, opts ...envOpt) *env {
	t.Helper()
	dir := t.TempDir()
	ts, err := tlsconf.Open("", "", dir, "mx.example.test")
	if err != nil {
		t.Fatal(err)
	}
	certFile, _ := ts.Files()
	pemBytes, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		t.Fatal("no certificate in", certFile)
	}
	u, err := users.Parse(strings.NewReader("alice\nbob@example.test robert\npostmaster alice\n@other.test catchall\n"),
		"users", []string{"example.test", "other.test"})
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "mail")
	o := baseOptions()
	o.Maildir = maildir.New(root, "mx.example.test", durable.Filesystem)
	o.TLS = ts.Config()
	o.Queue = &memQueue{}
	o.AuthFailDelay = time.Millisecond
	o.Log = slog.New(slog.NewTextHandler(testWriter{t}, nil))
	for _, f := range opts {
		f(&o)
	}
	e := &env{srv: New(o, u), root: root, queue: o.Queue.(*memQueue),
		clientT: &tls.Config{RootCAs: pool, ServerName: "mx.example.test"}}
	e.srv.SetPasswords(accounts{"alice": "wonderland", "robert": "builder"})
	bind := func(name string, role Role, implicit bool) string {
		a, err := e.srv.Listen(name, role, implicit, "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		return a.String()
	}
	e.smtp = bind("smtp", Inbound, false)
	e.smtps = bind("smtps", Inbound, true)
	e.relay = bind("relay", Relay, false)
	e.submit = bind("submission", Submission, false)
	e.srv.Serve()
	t.Cleanup(func() { e.srv.Shutdown(t.Context()) })
	return e
}

// testWriter sends the server log to the test log, shown on failure.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// files lists the names in <root>/<mailbox>/Maildir/<sub>.
func (e *env) files(t *testing.T, mailbox, sub string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(e.root, mailbox, "Maildir", sub))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range ents {
		names = append(names, de.Name())
	}
	return names
}

// only returns the content of the one message in mailbox's new/.
func (e *env) only(t *testing.T, mailbox string) string {
	t.Helper()
	names := e.files(t, mailbox, "new")
	if len(names) != 1 {
		t.Fatalf("%s: %d messages in new/, want 1: %v", mailbox, len(names), names)
	}
	if tmp := e.files(t, mailbox, "tmp"); len(tmp) != 0 {
		t.Fatalf("%s: tmp/ not empty: %v", mailbox, tmp)
	}
	b, err := os.ReadFile(filepath.Join(e.root, mailbox, "Maildir", "new", names[0]))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// client speaks raw SMTP, so tests can send what a well-behaved library
// would refuse to.
type client struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

// dial connects and reads the greeting.
func dial(t *testing.T, addr string) *client {
	t.Helper()
	c := dialFrom(t, "127.0.0.1", addr)
	c.expect(220)
	return c
}

// dialFrom connects from a chosen loopback address (Linux routes all of
// 127/8 to lo) and reads nothing.
func dialFrom(t *testing.T, local, addr string) *client {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &client{t: t, conn: nc, r: bufio.NewReader(nc)}
}

// waitFor polls cond; the deadline only turns a hang into a failure.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 10s")
		}
	}
}

func dialTLS(t *testing.T, addr string, cfg *tls.Config) *client {
	t.Helper()
	nc, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := &client{t: t, conn: nc, r: bufio.NewReader(nc)}
	t.Cleanup(func() { nc.Close() })
	c.expect(220)
	return c
}

// reply reads one (possibly multi-line) reply.
func (c *client) reply() (int, string) {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var text []string
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			c.t.Fatalf("reading reply: %v (so far %q)", err, text)
		}
		line = strings.TrimRight(line, "\r\n")
		if len(line) < 4 {
			c.t.Fatalf("short reply line %q", line)
		}
		code, err := strconv.Atoi(line[:3])
		if err != nil {
			c.t.Fatalf("bad reply line %q", line)
		}
		text = append(text, line[4:])
		if line[3] == ' ' {
			return code, strings.Join(text, "\n")
		}
	}
}

// expect reads a reply and fails unless it has the code; returns the text.
func (c *client) expect(code int) string {
	c.t.Helper()
	got, text := c.reply()
	if got != code {
		c.t.Fatalf("got %d %s, want %d", got, text, code)
	}
	return text
}

func (c *client) write(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.conn, s); err != nil {
		c.t.Fatal(err)
	}
}

// cmd sends one command and returns its reply.
func (c *client) cmd(line string) (int, string) {
	c.t.Helper()
	c.write(line + "\r\n")
	return c.reply()
}

// must sends one command and fails unless the reply has the code.
func (c *client) must(line string, code int) string {
	c.t.Helper()
	c.write(line + "\r\n")
	return c.expect(code)
}

// send runs one whole transaction and returns the final reply.
func (c *client) send(from string, rcpts []string, data string) (int, string) {
	c.t.Helper()
	c.must("MAIL FROM:<"+from+">", 250)
	for _, r := range rcpts {
		c.must("RCPT TO:<"+r+">", 250)
	}
	c.must("DATA", 354)
	c.write(data + ".\r\n")
	return c.reply()
}

func (c *client) starttls(cfg *tls.Config) {
	c.t.Helper()
	c.must("STARTTLS", 220)
	tc := tls.Client(c.conn, cfg)
	if err := tc.Handshake(); err != nil {
		c.t.Fatal(err)
	}
	c.conn, c.r = tc, bufio.NewReader(tc)
}

// closed reports whether the server has closed the connection.
func (c *client) closed() bool {
	c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := c.r.ReadByte()
	return err != nil
}

const msg = "From: a@example.org\r\nTo: alice@example.test\r\nSubject: hi\r\n\r\nHello.\r\n"

// busyCount is the number of sessions receiving a message.
func (cs *conns) busyCount() int {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	n := 0
	for c := range cs.open {
		if c.busy.Load() {
			n++
		}
	}
	return n
}

// baseOptions are the limits every test server shares; callers add the
// storage, TLS and log they need.
func baseOptions() Options {
	return Options{
		Hostname:        "mx.example.test",
		MaxMessageBytes: 1 << 20,
		MaxRecipients:   5,
		MaxLineBytes:    1000,
		Timeout:         10 * time.Second,
		MaxConns:        100,
		MaxConnsPerIP:   100,
		RelayAllowed:    func(ip netip.Addr) bool { return ip.IsLoopback() },
	}
}
