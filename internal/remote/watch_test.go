package remote

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"facteur/internal/smtptest"
)

// watch is a TCP relay in front of a fake MX, and is the server as the client
// sees it: it notes each QUIT the client sends and each connection the client
// closes, and can itself end every session the way a server ends an idle one.
// It reads commands only on plaintext sessions.
type watch struct {
	t      testing.TB
	target string
	hungUp chan struct{} // one value each time the client ends a session, with QUIT or by closing

	mu    sync.Mutex
	conns map[*watchConn]bool
	quits int
}

type watchConn struct {
	client, server net.Conn
	relayed        chan struct{} // closed when server-to-client relaying ended
	dropped        bool          // we ended the session ourselves
}

// newWatch listens on ip:port for mx, stopped by t.Cleanup.
func newWatch(t testing.TB, ip string, port int, mx *smtptest.MX) *watch {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	w := &watch{t: t, target: net.JoinHostPort("127.0.0.1", strconv.Itoa(mx.Port())),
		hungUp: make(chan struct{}, 1000), conns: make(map[*watchConn]bool)}
	t.Cleanup(func() {
		l.Close()
		w.mu.Lock()
		defer w.mu.Unlock()
		for c := range w.conns {
			c.client.Close()
			c.server.Close()
		}
	})
	go w.serve(l)
	return w
}

func (w *watch) serve(l net.Listener) {
	for {
		client, err := l.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", w.target)
		if err != nil {
			client.Close()
			continue
		}
		c := &watchConn{client: client, server: server, relayed: make(chan struct{})}
		w.mu.Lock()
		w.conns[c] = true
		w.mu.Unlock()
		go func() {
			defer close(c.relayed)
			io.Copy(client, server)
			w.mu.Lock()
			dropped := c.dropped
			w.mu.Unlock()
			if !dropped {
				client.Close()
			}
		}()
		go w.fromClient(c)
	}
}

// fromClient relays what the client sends, and notes QUIT and the end of the
// session when the client asked for it: by QUIT, or by closing its side (a
// clean end of its stream, as opposed to our own close).
func (w *watch) fromClient(c *watchConn) {
	var line []byte
	quit := false
	buf := make([]byte, 4096)
	for {
		n, err := c.client.Read(buf)
		line = append(line, buf[:n]...)
		for {
			i := bytes.Index(line, []byte("\r\n"))
			if i < 0 {
				break
			}
			if string(line[:i]) == "QUIT" {
				quit = true
				w.mu.Lock()
				w.quits++
				w.mu.Unlock()
			}
			line = line[i+2:]
		}
		c.server.Write(buf[:n])
		if err != nil {
			if quit || errors.Is(err, io.EOF) {
				w.hungUp <- struct{}{}
			}
			c.client.Close()
			c.server.Close()
			w.mu.Lock()
			delete(w.conns, c)
			w.mu.Unlock()
			return
		}
	}
}

// dropIdle ends every session as a server ends an idle one: the fake MX
// behind is gone, the client gets reply (if any), and no more from us.
func (w *watch) dropIdle(reply string) {
	w.mu.Lock()
	var cs []*watchConn
	for c := range w.conns {
		c.dropped = true
		cs = append(cs, c)
	}
	w.mu.Unlock()
	for _, c := range cs {
		c.server.Close()
		<-c.relayed
		if reply != "" {
			io.WriteString(c.client, reply)
		}
		c.client.(*net.TCPConn).CloseWrite()
	}
}

func (w *watch) quitCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.quits
}

// waitHangUp fails the test unless the client closes a connection within
// timeout, which is a deadline for a failing test, not a speed requirement.
func (w *watch) waitHangUp(t testing.TB, timeout time.Duration) {
	t.Helper()
	select {
	case <-w.hungUp:
	case <-time.After(timeout):
		t.Fatalf("the client kept its connection for %v", timeout)
	}
}
