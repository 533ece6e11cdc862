package smtpd

import (
	"net"
	"runtime"
	"strings"

	"facteur/internal/smtplog"
)

// dialogueTap logs the dialogue of a session, at debug level, from what
// its Debug writer is handed (see wireTap): what go-smtp reads, through
// an io.TeeReader, and what it writes, through an io.MultiWriter. Only
// the caller tells them apart.
type dialogueTap struct{ d *smtplog.Dialogue }

func (t dialogueTap) Write(p []byte) (int, error) {
	if debugCaller() == "io.(*teeReader).Read" {
		t.d.Commands(p)
	} else {
		t.d.Replies(p)
	}
	return len(p), nil
}

// debugCaller names the function that called the Write under way on a
// session's Debug writer: io.(*teeReader).Read for bytes go-smtp read,
// io.(*multiWriter).Write for bytes it wrote.
func debugCaller() string {
	var pcs [8]uintptr
	name := ""
	for _, pc := range pcs[:runtime.Callers(2, pcs[:])] {
		// A return address: the call is the instruction before it.
		if name = runtime.FuncForPC(pc - 1).Name(); !strings.HasPrefix(name, "facteur/internal/smtpd.") {
			break
		}
	}
	return name
}

// oneConn is a listener that hands over one connection; then it is
// closed.
type oneConn struct {
	conn  net.Conn
	taken bool // Accept is called from one goroutine, Serve's
}

func (l *oneConn) Accept() (net.Conn, error) {
	if l.taken {
		return nil, net.ErrClosed
	}
	l.taken = true
	return l.conn, nil
}

func (l *oneConn) Close() error { return nil }

func (l *oneConn) Addr() net.Addr { return l.conn.LocalAddr() }
