package remote

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"facteur/internal/mx"
	"facteur/internal/resolver"
	"facteur/internal/smtptest"
)

// env is a domain, example.test, with two MX hosts on one port:
// mx1.example.test (preference 10, 127.0.0.2) and mx2.example.test (20, 127.0.0.3).
// single.test has mx1.example.test alone, for tests where a failure must
// come from mx1. The fake servers are started by each test, or not.
type env struct {
	dns    *smtptest.DNSServer
	port   int
	client *Client
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dns := smtptest.NewDNS(t)
	dns.MX("example.test", 10, "mx1.example.test")
	dns.MX("example.test", 20, "mx2.example.test")
	dns.MX("single.test", 10, "mx1.example.test")
	dns.A("mx1.example.test", "127.0.0.2")
	dns.A("mx2.example.test", "127.0.0.3")
	dnsc, err := resolver.New(dns.Addr(), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	res := mx.New(dnsc)
	port := smtptest.FreePortOn(t, "127.0.0.2", "127.0.0.3")
	return &env{dns: dns, port: port, client: &Client{
		Resolver:       res,
		Port:           port,
		HeloName:       "relay.test",
		ConnectTimeout: 5 * time.Second,
		CommandTimeout: 10 * time.Second,
		Log:            slog.New(slog.NewTextHandler(t.Output(), nil)),
	}}
}

func (e *env) mx1(t *testing.T, opts smtptest.MXOptions) *smtptest.MX {
	return smtptest.NewMX(t, "127.0.0.2", e.port, opts)
}

func (e *env) mx2(t *testing.T, opts smtptest.MXOptions) *smtptest.MX {
	return smtptest.NewMX(t, "127.0.0.3", e.port, opts)
}

func (e *env) deliver(msgs ...*Message) [][]Result {
	return e.client.Deliver(context.Background(), "example.test", msgs)
}

func (e *env) deliverSingle(msgs ...*Message) [][]Result {
	return e.client.Deliver(context.Background(), "single.test", msgs)
}

const body = "From: a@sender.test\r\nSubject: test\r\n\r\nhello\r\n"

func newMsg(id string, rcpts ...string) *Message {
	return &Message{
		ID:    id,
		From:  "a@sender.test",
		Rcpts: rcpts,
		Size:  int64(len(body)),
		Open:  func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(body)), nil },
	}
}

func reply(code int, enhanced smtp.EnhancedCode, text string) *smtp.SMTPError {
	return &smtp.SMTPError{Code: code, EnhancedCode: enhanced, Message: text}
}

func always(e *smtp.SMTPError) func(string) *smtp.SMTPError {
	return func(string) *smtp.SMTPError { return e }
}

// wantStatus checks every result of every message.
func wantStatus(t *testing.T, out [][]Result, st Status, host string) {
	t.Helper()
	for i, rs := range out {
		for j, r := range rs {
			if r.Status != st || r.Host != host {
				t.Errorf("out[%d][%d] = %+v, want %v from %q", i, j, r, st, host)
			}
		}
	}
}

func wantCounts(t *testing.T, mx1, mx2 *smtptest.MX, n1, n2 int) {
	t.Helper()
	if mx1 != nil && mx1.Count() != n1 {
		t.Errorf("mx1 got %d messages, want %d", mx1.Count(), n1)
	}
	if mx2 != nil && mx2.Count() != n2 {
		t.Errorf("mx2 got %d messages, want %d", mx2.Count(), n2)
	}
}

// failingReader yields some bytes, then an error, like a disk failing mid-read.
func failingReader() io.ReadCloser {
	return io.NopCloser(io.MultiReader(bytes.NewReader(bytes.Repeat([]byte("x"), 64<<10)), errReader{}))
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }
