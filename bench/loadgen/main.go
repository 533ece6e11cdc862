// Command loadgen is the bench's SMTP client for what smtp-source does not
// measure: the time from the end of DATA to the 250 (the cost of making a
// message durable, as the client sees it), and one very large message.
//
//	loadgen -addr 127.0.0.1:2525 -n 5000 -c 20 -size 4096 -to bench@localhost
//
// prints one line: msgs=N errors=E secs=S rate=R p50_ms=X p99_ms=Y
// max_ms=Z, then conn_p50_ms and conn_p99_ms (from the start of the dial to
// the 250: what waiting for a free server process adds), and with TLS
// resumed=K (handshakes that resumed a session) and group=G (the key
// exchange the last handshake used).
// Each message gets its own connection (like smtp-source without -d) unless
// -reuse is given.
//
// With -starttls each connection upgrades after EHLO; with -tls it speaks
// TLS from the first byte (port 465). Certificates are not checked. Without
// -resume every handshake is a full one; with it the sessions share one
// tls.ClientSessionCache, so a server that issues tickets is spared the
// key exchange's signature from the second connection on.
//
// -src K spreads the connections over the source addresses 127.0.0.1 to
// 127.0.0.K, for runs that would run out of ephemeral ports on one.
// -groups limits the key exchanges offered, so that two servers that
// prefer different ones can be made to do the same work.
package main

import (
	"bufio"
	"crypto/tls"
	"flag"
	"fmt"
	"net"
	"net/netip"
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
	starttls := flag.Bool("starttls", false, "STARTTLS after EHLO")
	implicit := flag.Bool("tls", false, "TLS from the first byte (smtps)")
	resume := flag.Bool("resume", false, "share a TLS session cache between connections (tickets)")
	srcs := flag.Int("src", 1, "source addresses 127.0.0.1 to 127.0.0.`K`")
	groups := flag.String("groups", "", "key exchanges to offer, `names` as in crypto/tls (X25519,CurveP256,X25519MLKEM768); empty: Go's default")
	flag.Parse()

	d := &dialer{addr: *addr, timeout: *timeout, starttls: *starttls, srcs: max(1, *srcs)}
	if *starttls || *implicit {
		d.tls = &tls.Config{InsecureSkipVerify: true, ServerName: "bench.localdomain"}
		if *resume {
			d.tls.ClientSessionCache = tls.NewLRUClientSessionCache(0)
		}
		for g := range strings.SplitSeq(*groups, ",") {
			id, ok := groupIDs[strings.TrimSpace(g)]
			if g != "" && !ok {
				fmt.Fprintf(os.Stderr, "loadgen: unknown key exchange %q\n", g)
				os.Exit(2)
			}
			if ok {
				d.tls.CurvePreferences = append(d.tls.CurvePreferences, id)
			}
		}
		if *implicit {
			d.starttls, d.implicit = false, true
		}
	}

	body := makeBody(*size, *to)
	var next atomic.Int64
	var errs atomic.Int64
	lat := make([][]time.Duration, *c)
	total := make([][]time.Duration, *c) // from the dial (or MAIL) to the 250
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
				start := time.Now()
				if s == nil {
					var err error
					if s, err = d.dial(); err != nil {
						fail(err)
						continue
					}
				}
				l, err := s.send(*from, *to, body)
				if err != nil {
					fail(err)
					s.conn.Close()
					s = nil
					continue
				}
				lat[w] = append(lat[w], l)
				total[w] = append(total[w], time.Since(start))
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
	all, conn := slices.Concat(lat...), slices.Concat(total...)
	slices.Sort(all)
	slices.Sort(conn)
	fmt.Printf("msgs=%d errors=%d secs=%.3f rate=%.1f p50_ms=%.2f p99_ms=%.2f max_ms=%.2f conn_p50_ms=%.2f conn_p99_ms=%.2f",
		len(all), errs.Load(), secs, float64(len(all))/secs, pct(all, 0.50), pct(all, 0.99), pct(all, 1), pct(conn, 0.50), pct(conn, 0.99))
	if d.tls != nil {
		fmt.Printf(" handshakes=%d resumed=%d group=%s", d.handshakes.Load(), d.resumed.Load(), d.group.Load())
	}
	fmt.Println()
	if err, ok := firstErr.Load().(error); ok {
		fmt.Fprintln(os.Stderr, "loadgen: first error:", err)
		os.Exit(1)
	}
}

// pct is the p-th quantile of sorted, in milliseconds.
func pct(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	return float64(sorted[min(len(sorted)-1, int(p*float64(len(sorted))))].Microseconds()) / 1000
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

var groupIDs = map[string]tls.CurveID{}

func init() {
	for _, id := range []tls.CurveID{tls.X25519, tls.CurveP256, tls.CurveP384, tls.X25519MLKEM768} {
		groupIDs[id.String()] = id
	}
}

// dialer opens sessions, in TLS if asked, and counts the handshakes.
type dialer struct {
	addr     string
	timeout  time.Duration
	srcs     int
	tls      *tls.Config // nil: plain
	starttls bool
	implicit bool

	n          atomic.Int64 // connections, to pick the source address
	handshakes atomic.Int64
	resumed    atomic.Int64
	group      atomic.Value // string
}

func (d *dialer) dial() (*session, error) {
	nd := net.Dialer{Timeout: d.timeout}
	if d.srcs > 1 {
		ip := netip.AddrFrom4([4]byte{127, 0, 0, byte(1 + d.n.Add(1)%int64(min(d.srcs, 254)))})
		nd.LocalAddr = &net.TCPAddr{IP: ip.AsSlice()}
	}
	nc, err := nd.Dial("tcp", d.addr)
	if err != nil {
		return nil, err
	}
	if d.implicit {
		if nc, err = d.handshake(nc); err != nil {
			return nil, err
		}
	}
	// 8 KiB: a larger body goes past the buffer in one write, and 10,000
	// sessions at once keep one each.
	s := &session{conn: nc, r: bufio.NewReader(nc), w: bufio.NewWriterSize(nc, 8<<10), timeout: d.timeout}
	if err = s.expect("220"); err == nil {
		err = s.cmd("EHLO loadgen.localhost", "250")
	}
	if err == nil && d.starttls {
		if err = s.cmd("STARTTLS", "220"); err == nil {
			if s.conn, err = d.handshake(nc); err == nil {
				s.r.Reset(s.conn)
				s.w.Reset(s.conn)
				err = s.cmd("EHLO loadgen.localhost", "250")
			}
		}
	}
	if err != nil {
		nc.Close()
		return nil, err
	}
	return s, nil
}

func (d *dialer) handshake(nc net.Conn) (net.Conn, error) {
	tc := tls.Client(nc, d.tls)
	nc.SetDeadline(time.Now().Add(d.timeout))
	if err := tc.Handshake(); err != nil {
		nc.Close()
		return nil, fmt.Errorf("TLS handshake: %w", err)
	}
	nc.SetDeadline(time.Time{})
	st := tc.ConnectionState()
	d.handshakes.Add(1)
	if st.DidResume {
		d.resumed.Add(1)
	}
	d.group.Store(st.CurveID.String())
	return tc, nil
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
