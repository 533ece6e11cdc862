package remote

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"testing"

	"facteur/internal/mx"
	"facteur/internal/smtptest"
)

// staticMX answers every lookup with one host, keeping DNS out of the benchmark.
type staticMX []mx.Host

func (s staticMX) Lookup(context.Context, string) ([]mx.Host, error) { return s, nil }

// BenchmarkDeliver measures one 4 KiB message per op to a local fake MX:
// a new connection per Deliver call carrying one or ten messages, or
// sequential calls of one message each on a session kept between calls; in
// plaintext, and with STARTTLS.
func BenchmarkDeliver(b *testing.B) {
	data := bytes.Repeat([]byte("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ\r\n"), 64)
	ca := smtptest.NewCA(b, "localhost")
	for _, bc := range []struct {
		name    string
		perCall int
		reuse   bool
		tls     bool
	}{
		{"1-per-connection", 1, false, false},
		{"10-per-connection", 10, false, false},
		{"sequential-calls-reuse", 1, true, false},
		{"starttls-1-per-connection", 1, false, true},
		{"starttls-sequential-calls-reuse", 1, true, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			opts := smtptest.MXOptions{NoData: true}
			if bc.tls {
				opts.TLS = ca.ServerTLS()
			}
			fake := smtptest.NewMX(b, "127.0.0.1", 0, opts)
			c := &Client{
				Resolver: staticMX{{Name: "localhost", Addrs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}}},
				Port:     fake.Port(),
				HeloName: "bench.test",
				TLS:      None,
				Log:      slog.New(slog.DiscardHandler),
			}
			if bc.tls {
				c.TLS = Required
			}
			if !bc.reuse {
				c.IdleTimeout = -1
			}
			defer c.Close()
			msgs := make([]*Message, bc.perCall)
			for i := range msgs {
				msgs[i] = &Message{
					ID:    fmt.Sprint("q", i),
					From:  "a@bench.test",
					Rcpts: []string{"b@example.test"},
					Size:  int64(len(data)),
					Open:  func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil },
				}
			}
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i += bc.perCall {
				batch := msgs[:min(bc.perCall, b.N-i)]
				for _, rs := range c.Deliver(context.Background(), "example.test", batch) {
					if rs[0].Status != Sent {
						b.Fatalf("not sent: %+v", rs[0])
					}
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(fake.Connections()), "conns")
		})
	}
}
