package smtpd

import (
	"net"
	"runtime"
	"strings"
	"sync"

	"facteur/internal/smtplog"
)

// dialogueTap is the Debug writer of a session's own server (see
// Server.serveLogged). go-smtp hands it both directions through the one
// writer: what it reads, through an io.TeeReader, and what it writes,
// through an io.MultiWriter. Only the caller tells them apart.
type dialogueTap struct{ d *smtplog.Dialogue }

func (t dialogueTap) Write(p []byte) (int, error) {
	if fromReader() {
		t.d.Commands(p)
	} else {
		t.d.Replies(p)
	}
	return len(p), nil
}

// fromReader reports whether the Write under way is the tee of go-smtp's
// reader.
func fromReader() bool {
	var pcs [8]uintptr
	frames := runtime.CallersFrames(pcs[:runtime.Callers(2, pcs[:])])
	for {
		f, more := frames.Next()
		if !strings.HasPrefix(f.Function, "facteur/internal/smtpd.") || !more {
			return f.Function == "io.(*teeReader).Read"
		}
	}
}

// oneConn is a listener that hands over one connection, then waits to be
// closed: by the connection's end, or by its server's shutdown.
type oneConn struct {
	conn   net.Conn
	taken  bool // Accept is called from one goroutine, Serve's
	closed chan struct{}
	once   sync.Once
}

func (l *oneConn) Accept() (net.Conn, error) {
	if !l.taken {
		l.taken = true
		return l.conn, nil
	}
	<-l.closed
	return nil, net.ErrClosed
}

func (l *oneConn) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *oneConn) Addr() net.Addr { return l.conn.LocalAddr() }
