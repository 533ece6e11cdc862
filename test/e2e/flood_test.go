package e2e

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// peakRSS is the server's peak resident memory, from /proc.
func peakRSS(t *testing.T, in *instance) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", in.cmd.Process.Pid))
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// dialGreeting connects from a chosen loopback address and returns the
// connection and the first reply line.
func dialGreeting(from, addr string) (net.Conn, string, error) {
	d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, "", err
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	c.SetReadDeadline(time.Time{})
	if err != nil {
		c.Close()
		return nil, "", err
	}
	return c, strings.TrimRight(line, "\r\n"), nil
}

// Two thousand idle connections, from many addresses so that none passes
// the per-IP cap, do not keep a new client from delivering.
func TestIdleFloodDoesNotStopDelivery(t *testing.T) {
	in := setup(t, "[limits]\nmax_connections = 2100\nmax_connections_per_ip = 25\n")
	in.start()
	const idle, perAddr = 2000, 20
	conns := make([]net.Conn, idle)
	errs := make([]error, idle)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 100)
	for i := range idle {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			from := "127.0.1." + strconv.Itoa(1+i/perAddr)
			c, greet, err := dialGreeting(from, in.smtp)
			if err == nil && !strings.HasPrefix(greet, "220 ") {
				err = fmt.Errorf("greeting %q", greet)
			}
			conns[i], errs[i] = c, err
		})
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("idle connection %d: %v", i, err)
		}
	}
	if err := send(in.smtp, "a@example.org", []string{"alice@example.test"}, message); err != nil {
		t.Fatalf("with %d idle connections open: %v", idle, err)
	}
	if got := maildirNew(t, in.dir+"/var/mail", "alice"); len(got) != 1 {
		t.Errorf("alice has %d messages", len(got))
	}
	t.Logf("peak RSS of facteur with %d idle connections: %s", idle, peakRSS(t, in))
}

// Past max_connections, and past max_connections_per_ip from one address,
// a client gets 421 4.7.0 and is hung up on; a client that sends one byte
// a second is cut off by the timeout, in commands and in DATA.
func TestConnectionLimitsAndSlowClients(t *testing.T) {
	in := setup(t, "[limits]\nmax_connections = 8\nmax_connections_per_ip = 3\ntimeout = \"1s\"\n")
	in.start()
	refused := func(from, want string) {
		t.Helper()
		c, greet, err := dialGreeting(from, in.smtp)
		if err != nil {
			t.Fatalf("from %s: %v", from, err)
		}
		defer c.Close()
		if !strings.HasPrefix(greet, "421 4.7.0") || !strings.Contains(greet, want) {
			t.Errorf("from %s: greeting %q, want 421 4.7.0 ... %s", from, greet, want)
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil {
			t.Errorf("from %s: connection left open after the 421", from)
		}
	}
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	hold := func(from string) {
		t.Helper()
		c, greet, err := dialGreeting(from, in.smtp)
		if err != nil || !strings.HasPrefix(greet, "220 ") {
			t.Fatalf("from %s: %q %v", from, greet, err)
		}
		held = append(held, c)
	}
	for range 3 {
		hold("127.0.2.1")
	}
	refused("127.0.2.1", "from your address")
	for i := range 5 {
		hold("127.0.2." + strconv.Itoa(2+i%2))
	}
	refused("127.0.2.9", "too many connections")
	for _, c := range held {
		c.Close()
	}
	held = nil
	// The server counts a connection until it has seen it close: wait for
	// that before taking a slot again.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		c, greet, err := dialGreeting("127.0.2.20", in.smtp)
		if err == nil {
			c.Close()
		}
		if strings.HasPrefix(greet, "220 ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("connections still counted 10s after they closed: %q %v", greet, err)
		}
	}

	// One byte a second: nothing completes within the timeout. The client
	// gets one reply (to what it managed to send) and is hung up on.
	slow := func(commands []string, trickle string) string {
		t.Helper()
		c, greet, err := dialGreeting("127.0.2.20", in.smtp)
		if err != nil || !strings.HasPrefix(greet, "220 ") {
			t.Fatalf("%q %v", greet, err)
		}
		defer c.Close()
		r := bufio.NewReader(c)
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		for _, cmd := range commands {
			c.Write([]byte(cmd + "\r\n"))
			if got := readReply(r); got == "" || got[0] != '2' && got[0] != '3' {
				t.Fatalf("%s: %q", cmd, got)
			}
		}
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			for i := 0; i < len(trickle); i++ {
				if _, err := c.Write([]byte{trickle[i]}); err != nil {
					return
				}
				select {
				case <-stop:
					return
				case <-time.After(time.Second):
				}
			}
		}()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		got := readReply(r)
		if more, err := r.ReadString('\n'); err == nil {
			t.Errorf("after %q the connection is still open: %q", got, more)
		}
		return got
	}
	if got := slow(nil, "EHLO slow.example.org\r\n"); got == "" || got[0] == '2' {
		t.Errorf("slow command: got %q, want a refusal", got)
	}
	data := []string{"EHLO c", "MAIL FROM:<a@example.org>", "RCPT TO:<alice@example.test>", "DATA"}
	if got := slow(data, "Subject: slow\r\n\r\nbody\r\n.\r\n"); !strings.HasPrefix(got, "451 4.4.2") {
		t.Errorf("slow DATA: got %q, want 451 4.4.2", got)
	}
	if got := maildirNew(t, in.dir+"/var/mail", "alice"); len(got) != 0 {
		t.Errorf("alice has %d messages from slow clients", len(got))
	}
	t.Logf("peak RSS of facteur: %s", peakRSS(t, in))
}

// readReply reads one possibly multi-line reply; "" when the connection
// ends first.
func readReply(r *bufio.Reader) string {
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return ""
		}
		if len(line) >= 4 && line[3] == ' ' {
			return strings.TrimRight(line, "\r\n")
		}
	}
}
