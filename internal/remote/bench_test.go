package remote

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"facteur/internal/mx"
	"facteur/internal/smtptest"
)

// staticMX answers every lookup with one host, keeping DNS out of the benchmark.
type staticMX []mx.Host

func (s staticMX) Lookup(context.Context, string) ([]mx.Host, error) { return s, nil }

// BenchmarkDeliver measures one 4 KiB message per op to a local fake MX:
// a new connection per Deliver call carrying one or ten messages, or
// sequential calls of one message each on a session kept between calls; in
// plaintext, and with STARTTLS; and on a kept session behind a link with a
// 2 ms round trip, where the time per message counts round trips.
func BenchmarkDeliver(b *testing.B) {
	data := bytes.Repeat([]byte("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ\r\n"), 64)
	ca := smtptest.NewCA(b, "localhost")
	for _, bc := range []struct {
		name    string
		perCall int
		reuse   bool
		tls     bool
		rtt     time.Duration
	}{
		{"1-per-connection", 1, false, false, 0},
		{"10-per-connection", 10, false, false, 0},
		{"sequential-calls-reuse", 1, true, false, 0},
		{"starttls-1-per-connection", 1, false, true, 0},
		{"starttls-sequential-calls-reuse", 1, true, true, 0},
		{"sequential-calls-reuse-2ms-rtt", 1, true, false, 2 * time.Millisecond},
		{"10-per-connection-2ms-rtt", 10, false, false, 2 * time.Millisecond},
	} {
		b.Run(bc.name, func(b *testing.B) {
			opts := smtptest.MXOptions{NoData: true}
			if bc.tls {
				opts.TLS = ca.ServerTLS()
			}
			fake := smtptest.NewMX(b, "127.0.0.1", 0, opts)
			port := fake.Port()
			if bc.rtt > 0 {
				port = delayed(b, port, bc.rtt)
			}
			c := &Client{
				Resolver: staticMX{{Name: "localhost", Addrs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}}},
				Port:     port,
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

// delayed is a TCP relay on loopback to port that holds each chunk for half
// of rtt in each direction, and returns its own port.
func delayed(b *testing.B, port int, rtt time.Duration) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	relay := func(dst, src net.Conn) {
		defer dst.Close()
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				time.Sleep(rtt / 2)
				if _, err := dst.Write(buf[:n]); err != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}
	go func() {
		for {
			client, err := l.Accept()
			if err != nil {
				return
			}
			server, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
			if err != nil {
				client.Close()
				continue
			}
			go relay(server, client)
			go relay(client, server)
		}
	}()
	return l.Addr().(*net.TCPAddr).Port
}
