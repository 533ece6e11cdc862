package smtpd

import (
	"bufio"
	"cmp"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
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
	"facteur/internal/tlsconf"
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
				addr := benchServer(b, store, nil)
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

// benchServer serves store on loopback, offering STARTTLS with tlsCfg if
// it is not nil, and taking messages up to 32 MiB.
func benchServer(b *testing.B, store string, tlsCfg *tls.Config) string {
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
	o.TLS = tlsCfg
	o.MaxMessageBytes = 32 << 20
	srv := New(o, u)
	a, err := srv.Listen("smtp", Inbound, false, "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv.Serve()
	b.Cleanup(func() { srv.Shutdown(b.Context()) })
	return a.String()
}

// BenchmarkSessionTLS is one message per connection with STARTTLS, into
// the discard store so that what is measured is the session and its
// handshake: dial, EHLO, STARTTLS, handshake, EHLO, one 4 KiB message,
// QUIT. The server has tlsconf's configuration (facteur's own) with a
// self-signed P-256 or RSA 2048 certificate. full: the client keeps no
// session, so each handshake is a full one (key exchange and the
// certificate's signature); resumed: one client session cache, so from the
// second connection on the server's tickets resume the session and spare
// the signature.
func BenchmarkSessionTLS(b *testing.B) {
	for _, kind := range []string{"ecdsa", "rsa"} {
		cfg := benchTLS(b, kind)
		for _, mode := range []string{"full", "resumed"} {
			b.Run(kind+"/"+mode, func(b *testing.B) {
				addr := benchServer(b, "quiet", cfg)
				client := &tls.Config{InsecureSkipVerify: true, ServerName: "mx.example.test"}
				if mode == "resumed" {
					client.ClientSessionCache = tls.NewLRUClientSessionCache(1)
				}
				b.SetBytes(int64(len(benchBody)))
				b.ReportAllocs()
				resumed := 0
				for b.Loop() {
					c, err := benchDialTLS(addr, client)
					if err == nil {
						if c.conn.(*tls.Conn).ConnectionState().DidResume {
							resumed++
						}
						err = c.message()
					}
					if err == nil {
						err = c.quit()
					}
					if err != nil {
						b.Fatal(err)
					}
				}
				if mode == "resumed" && resumed == 0 {
					b.Fatal("no handshake resumed a session")
				}
			})
		}
	}
}

// BenchmarkSessionSize is one large message per op over a kept
// connection, into the discard store: what grows with the size is the
// path of the data from the socket to the store (go-smtp's reader, the
// connection guard, the DATA reader, the header checks), not the disk.
func BenchmarkSessionSize(b *testing.B) {
	for _, size := range []int{1 << 20, 10 << 20} {
		b.Run(fmt.Sprintf("%dMiB", size>>20), func(b *testing.B) {
			addr := benchServer(b, "quiet", nil)
			c, err := benchDial(addr)
			if err != nil {
				b.Fatal(err)
			}
			var sb strings.Builder
			sb.WriteString(benchBody)
			line := strings.Repeat("0123456789", 8)[:76] + "\r\n"
			for sb.Len() < size {
				sb.WriteString(line)
			}
			c.body = sb.String()
			b.SetBytes(int64(len(c.body)))
			for b.Loop() {
				if err := c.message(); err != nil {
					b.Fatal(err)
				}
			}
			if err := c.quit(); err != nil {
				b.Fatal(err)
			}
		})
	}
}

// benchTLS is facteur's server configuration (tlsconf) with a self-signed
// certificate for mx.example.test on a new key of that kind.
func benchTLS(b *testing.B, kind string) *tls.Config {
	b.Helper()
	var key crypto.Signer
	var err error
	switch kind {
	case "ecdsa":
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "rsa":
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	}
	if err != nil {
		b.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "mx.example.test"},
		DNSNames:     []string{"mx.example.test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		b.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		b.Fatal(err)
	}
	st, err := tlsconf.Open(certFile, keyFile, dir, "mx.example.test")
	if err != nil {
		b.Fatal(err)
	}
	return st.Config()
}

// benchClient is a bare SMTP client that only checks reply codes. Its
// methods return errors rather than failing, since RunParallel's
// goroutines must not call b.Fatal.
type benchClient struct {
	conn net.Conn
	r    *bufio.Reader
	w    *bufio.Writer
	body string // signedBenchBody if empty
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

// benchDialTLS is benchDial, then STARTTLS and EHLO again.
func benchDialTLS(addr string, cfg *tls.Config) (*benchClient, error) {
	c, err := benchDial(addr)
	if err != nil {
		return nil, err
	}
	if err := c.cmd("STARTTLS", 220); err != nil {
		c.conn.Close()
		return nil, err
	}
	tc := tls.Client(c.conn, cfg)
	if err := tc.Handshake(); err != nil {
		c.conn.Close()
		return nil, err
	}
	c.conn = tc
	c.r.Reset(tc)
	c.w.Reset(tc)
	if err := c.cmd("EHLO client.example.org", 250); err != nil {
		tc.Close()
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
	c.w.WriteString(cmp.Or(c.body, signedBenchBody))
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
