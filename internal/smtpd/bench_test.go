package smtpd

import (
	"bufio"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"

	"facteur/internal/auth"
	"facteur/internal/durable"
	"facteur/internal/maildir"
	"facteur/internal/resolver"
	"facteur/internal/smtptest"
	"facteur/internal/users"
)

// The session benchmarks send one 4 KiB message per op over a real
// loopback connection, the way an SMTP client does, and wait for the 250:
//
//	maildir:  into a real Maildir (file fsync, rename, directory fsync)
//	checked:  maildir with SPF, DKIM and DMARC on, against a loopback DNS
//	          server, for a message DKIM-signed (RSA 2048) by a domain
//	          with SPF and DMARC p=reject records: all three pass
//	discard:  into a Deliverer that only reads the body, so what is left
//	          is go-smtp, our policy, the Received: header and logging
//	quiet:    discard with the log at error level: the difference with
//	          discard is what the per-connection and per-message lines cost
//
// each one over a kept connection (reuse), with a connection per message
// (connect: greeting, EHLO, QUIT, like smtp-source without -d), and with
// 20 clients at once (par20, reused connections: where fsyncs of
// concurrent messages could be shared).
//
// The helpers of helpers_test.go take a *testing.T, so this file has its
// own small server and client.
func BenchmarkSession(b *testing.B) {
	for _, store := range []string{"maildir", "checked", "discard", "quiet"} {
		for _, mode := range []string{"reuse", "connect", "par20"} {
			b.Run(store+"/"+mode, func(b *testing.B) {
				addr := benchServer(b, store)
				b.SetBytes(int64(len(benchBody)))
				b.ReportAllocs()
				switch mode {
				case "reuse":
					c, err := benchDial(addr)
					if err != nil {
						b.Fatal(err)
					}
					for b.Loop() {
						if err := c.message(); err != nil {
							b.Fatal(err)
						}
					}
					if err := c.quit(); err != nil {
						b.Fatal(err)
					}
				case "connect":
					for b.Loop() {
						c, err := benchDial(addr)
						if err == nil {
							err = c.message()
						}
						if err == nil {
							err = c.quit()
						}
						if err != nil {
							b.Fatal(err)
						}
					}
				case "par20":
					// 20 clients whatever GOMAXPROCS is.
					b.SetParallelism(max(1, 20/runtime.GOMAXPROCS(0)))
					b.RunParallel(func(pb *testing.PB) {
						c, err := benchDial(addr)
						if err != nil {
							b.Error(err)
							return
						}
						defer c.quit()
						for pb.Next() {
							if err := c.message(); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
			})
		}
	}
}

// benchBody is about what smtp-source -l 4096 sends: a few headers and a
// 4 KiB body of 80-column lines, dot-stuffing free.
var benchBody = func() string {
	var sb strings.Builder
	sb.WriteString("From: source@example.org\r\nTo: alice@example.test\r\nSubject: bench\r\n\r\n")
	line := strings.Repeat("0123456789", 8)[:78] + "\r\n"
	for sb.Len() < 4096 {
		sb.WriteString(line)
	}
	return sb.String()
}()

// discardStore takes a message without storing it.
type discardStore struct{}

func (discardStore) Deliver(mailboxes []string, header []byte, body io.Reader, _ maildir.Check) ([]string, error) {
	_, err := io.Copy(io.Discard, body)
	return nil, err
}

func benchServer(b *testing.B, store string) string {
	b.Helper()
	dir := b.TempDir()
	u, err := users.Parse(strings.NewReader("alice\n"), "users", []string{"example.test"})
	if err != nil {
		b.Fatal(err)
	}
	level := slog.LevelInfo
	if store == "quiet" {
		level = slog.LevelError
	}
	o := baseOptions()
	o.Maildir = discardStore{}
	o.Log = slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: level}))
	if store == "maildir" || store == "checked" {
		o.Maildir = maildir.New(filepath.Join(dir, "mail"), "mx.example.test", durable.Filesystem)
	}
	if store == "checked" {
		o.Checks = benchChecker(b)
	}
	srv := New(o, u)
	a, err := srv.Listen("smtp", Inbound, false, "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv.Serve()
	b.Cleanup(func() { srv.Shutdown(b.Context()) })
	return a.String()
}

// benchClient is a bare SMTP client that only checks reply codes. Its
// methods return errors rather than failing, since RunParallel's
// goroutines must not call b.Fatal.
type benchClient struct {
	conn net.Conn
	r    *bufio.Reader
	w    *bufio.Writer
}

func benchDial(addr string) (*benchClient, error) {
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	c := &benchClient{conn: nc, r: bufio.NewReader(nc), w: bufio.NewWriter(nc)}
	if err := c.expect(220); err != nil {
		nc.Close()
		return nil, err
	}
	if err := c.cmd("EHLO client.example.org", 250); err != nil {
		nc.Close()
		return nil, err
	}
	return c, nil
}

func (c *benchClient) message() error {
	for _, s := range []struct {
		line string
		code int
	}{{"MAIL FROM:<source@example.org>", 250}, {"RCPT TO:<alice@example.test>", 250}, {"DATA", 354}} {
		if err := c.cmd(s.line, s.code); err != nil {
			return err
		}
	}
	c.w.WriteString(signedBenchBody)
	return c.cmd(".", 250)
}

func (c *benchClient) quit() error {
	defer c.conn.Close()
	return c.cmd("QUIT", 221)
}

func (c *benchClient) cmd(line string, code int) error {
	c.w.WriteString(line + "\r\n")
	if err := c.w.Flush(); err != nil {
		return err
	}
	return c.expect(code)
}

// expect reads one reply, multi-line or not, and fails unless it has code.
func (c *benchClient) expect(code int) error {
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	want := strconv.Itoa(code)
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			return err
		}
		if len(line) < 4 || line[:3] != want {
			return fmt.Errorf("got %q, want %d", strings.TrimSpace(line), code)
		}
		if line[3] == ' ' {
			return nil
		}
	}
}

// benchChecker serves the DNS records of example.org, the bench's sender,
// on loopback: SPF allowing 127.0.0.1, a DKIM key, DMARC p=reject.
func benchChecker(b *testing.B) *auth.Checker {
	dns := smtptest.NewDNS(b)
	dns.TXT("example.org", "v=spf1 ip4:127.0.0.1 -all")
	dns.TXT("_dmarc.example.org", "v=DMARC1; p=reject")
	der, err := x509.MarshalPKIXPublicKey(benchKey.Public())
	if err != nil {
		b.Fatal(err)
	}
	// A TXT string holds 255 octets at most: the key takes two.
	key := "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der)
	dns.TXT("bench._domainkey.example.org", key[:255], key[255:])
	r, err := resolver.New(dns.Addr(), 0)
	if err != nil {
		b.Fatal(err)
	}
	return auth.New(r, "mx.example.test")
}

var benchKey = func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
}()

// signedBenchBody is benchBody with example.org's DKIM signature, which
// the servers without checks store like any header field.
var signedBenchBody = func() string {
	var out strings.Builder
	err := dkim.Sign(&out, strings.NewReader(benchBody), &dkim.SignOptions{
		Domain: "example.org", Selector: "bench", Signer: benchKey})
	if err != nil {
		panic(err)
	}
	return out.String()
}()
