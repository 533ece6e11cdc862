// Command loadgen is the bench's SMTP client for what smtp-source does not
// measure: the time from the end of DATA to the 250 (the cost of making a
// message durable, as the client sees it), and one very large message.
//
//	loadgen -addr 127.0.0.1:2525 -n 5000 -c 20 -size 4096 -to bench@localhost
//
// prints one line: msgs=N errors=E secs=S rate=R p50_ms=X p99_ms=Y max_ms=Z.
// Each message gets its own connection (like smtp-source without -d) unless
// -reuse is given.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:2525", "server `host:port`")
	n := flag.Int("n", 1000, "messages")
	c := flag.Int("c", 20, "concurrent sessions")
	size := flag.Int("size", 4096, "body bytes per message")
	from := flag.String("from", "source@localhost", "envelope sender")
	to := flag.String("to", "bench@localhost", "envelope recipient")
	reuse := flag.Bool("reuse", false, "send many messages per connection")
	timeout := flag.Duration("timeout", 2*time.Minute, "per reply")
	flag.Parse()

	body := makeBody(*size, *to)
	var next atomic.Int64
	var errs atomic.Int64
	lat := make([][]time.Duration, *c)
	var firstErr atomic.Value
	fail := func(err error) {
		errs.Add(1)
		firstErr.CompareAndSwap(nil, err)
	}
	t0 := time.Now()
	var wg sync.WaitGroup
	for w := range *c {
		wg.Go(func() {
			var s *session
			for next.Add(1) <= int64(*n) {
				if s == nil {
					var err error
					if s, err = dial(*addr, *timeout); err != nil {
						fail(err)
						continue
					}
				}
				d, err := s.send(*from, *to, body)
				if err != nil {
					fail(err)
					s.conn.Close()
					s = nil
					continue
				}
				lat[w] = append(lat[w], d)
				if !*reuse {
					s.quit()
					s = nil
				}
			}
			if s != nil {
				s.quit()
			}
		})
	}
	wg.Wait()
	secs := time.Since(t0).Seconds()
	all := slices.Concat(lat...)
	slices.Sort(all)
	pct := func(p float64) float64 {
		if len(all) == 0 {
			return 0
		}
		return float64(all[min(len(all)-1, int(p*float64(len(all))))].Microseconds()) / 1000
	}
	fmt.Printf("msgs=%d errors=%d secs=%.3f rate=%.1f p50_ms=%.2f p99_ms=%.2f max_ms=%.2f\n",
		len(all), errs.Load(), secs, float64(len(all))/secs, pct(0.50), pct(0.99), pct(1))
	if err, ok := firstErr.Load().(error); ok {
		fmt.Fprintln(os.Stderr, "loadgen: first error:", err)
		os.Exit(1)
	}
}

// makeBody is a few headers and size bytes of 80-column lines, ending in CRLF.
func makeBody(size int, to string) []byte {
	var sb strings.Builder
	sb.Grow(size + 256)
	fmt.Fprintf(&sb, "From: <source@localhost>\r\nTo: <%s>\r\nSubject: bench\r\n\r\n", to)
	line := strings.Repeat("0123456789", 8)[:78] + "\r\n"
	for n := 0; n < size; n += len(line) {
		sb.WriteString(line)
	}
	return []byte(sb.String())
}

type session struct {
	conn    net.Conn
	r       *bufio.Reader
	w       *bufio.Writer
	timeout time.Duration
}

func dial(addr string, timeout time.Duration) (*session, error) {
	nc, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	s := &session{conn: nc, r: bufio.NewReader(nc), w: bufio.NewWriterSize(nc, 64<<10), timeout: timeout}
	if err = s.expect("220"); err == nil {
		err = s.cmd("EHLO loadgen.localhost", "250")
	}
	if err != nil {
		nc.Close()
		return nil, err
	}
	return s, nil
}

// send runs one transaction and returns the time from the end of the data
// to the server's 250.
func (s *session) send(from, to string, body []byte) (time.Duration, error) {
	for _, c := range [][2]string{{"MAIL FROM:<" + from + ">", "250"}, {"RCPT TO:<" + to + ">", "250"}, {"DATA", "354"}} {
		if err := s.cmd(c[0], c[1]); err != nil {
			return 0, err
		}
	}
	if _, err := s.w.Write(body); err != nil {
		return 0, err
	}
	if _, err := s.w.WriteString(".\r\n"); err != nil {
		return 0, err
	}
	if err := s.w.Flush(); err != nil {
		return 0, err
	}
	t := time.Now()
	if err := s.expect("250"); err != nil {
		return 0, err
	}
	return time.Since(t), nil
}

func (s *session) quit() {
	s.cmd("QUIT", "221")
	s.conn.Close()
}

func (s *session) cmd(line, code string) error {
	s.w.WriteString(line + "\r\n")
	if err := s.w.Flush(); err != nil {
		return err
	}
	return s.expect(code)
}

func (s *session) expect(code string) error {
	s.conn.SetReadDeadline(time.Now().Add(s.timeout))
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			return err
		}
		if len(line) < 4 || line[:3] != code {
			return fmt.Errorf("got %q, want %s", strings.TrimSpace(line), code)
		}
		if line[3] == ' ' {
			return nil
		}
	}
}
