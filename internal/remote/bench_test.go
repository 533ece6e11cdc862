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

// BenchmarkDeliver measures one 4 KiB message per op to a local fake MX, with
// a new connection per message or several messages per connection.
func BenchmarkDeliver(b *testing.B) {
	data := bytes.Repeat([]byte("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ\r\n"), 64)
	fake := smtptest.NewMX(b, "127.0.0.1", 0, smtptest.MXOptions{NoData: true})
	c := &Client{
		Resolver: staticMX{{Name: "localhost", Addrs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}}},
		Port:     fake.Port(),
		HeloName: "bench.test",
		Log:      slog.New(slog.DiscardHandler),
	}
	for _, perConn := range []int{1, 10} {
		b.Run(fmt.Sprintf("%d-per-connection", perConn), func(b *testing.B) {
			msgs := make([]*Message, perConn)
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
			for i := 0; i < b.N; i += perConn {
				batch := msgs[:min(perConn, b.N-i)]
				for _, rs := range c.Deliver(context.Background(), "example.test", batch) {
					if rs[0].Status != Sent {
						b.Fatalf("not sent: %+v", rs[0])
					}
				}
			}
		})
	}
}
