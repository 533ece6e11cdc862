// Command idleconns opens many SMTP connections to a server, reads each
// greeting and says EHLO, prints "ready N" once all are open, and holds
// them idle until stdin is closed or it gets SIGTERM. The bench reads the
// server's RSS while they are held.
//
//	idleconns -addr 127.0.0.1:2525 -n 10000
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:2525", "server `host:port`")
	n := flag.Int("n", 10000, "connections")
	par := flag.Int("par", 100, "connections being opened at once")
	flag.Parse()

	var (
		mu    sync.Mutex
		conns []net.Conn
		fails atomic.Int64
		first atomic.Value
		wg    sync.WaitGroup
	)
	sem := make(chan struct{}, *par)
	for range *n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			c, err := open(*addr)
			if err != nil {
				fails.Add(1)
				first.CompareAndSwap(nil, err)
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		})
	}
	wg.Wait()
	fmt.Printf("ready %d failed %d\n", len(conns), fails.Load())
	if err, ok := first.Load().(error); ok {
		fmt.Fprintln(os.Stderr, "idleconns: first error:", err)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	stdin := make(chan struct{})
	go func() { io.Copy(io.Discard, os.Stdin); close(stdin) }()
	select {
	case <-sig:
	case <-stdin:
	}
	for _, c := range conns {
		c.Close()
	}
}

// open connects, reads the greeting and sends EHLO, so the server holds a
// full session, not just a socket.
func open(addr string) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, 30*time.Second)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(60 * time.Second))
	r := bufio.NewReader(c)
	if err = reply(r, "220"); err == nil {
		if _, err = io.WriteString(c, "EHLO idle.localhost\r\n"); err == nil {
			err = reply(r, "250")
		}
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	c.SetDeadline(time.Time{})
	return c, nil
}

func reply(r *bufio.Reader, code string) error {
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return err
		}
		if !strings.HasPrefix(line, code) || len(line) < 4 {
			return fmt.Errorf("got %q, want %s", strings.TrimSpace(line), code)
		}
		if line[3] == ' ' {
			return nil
		}
	}
}
