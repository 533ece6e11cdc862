package smtpd

import (
	"bytes"
	"errors"
	"io"
	"sync/atomic"
	"syscall"

	"github.com/emersion/go-smtp"
	"golang.org/x/sys/unix"
)

// The connection guard checks what go-smtp cannot be asked to: the bytes
// of the client's stream as they arrive, above TLS, before go-smtp reads
// them as commands or message data.
//
//   - A bare CR or LF, anywhere. go-smtp's dot reader drops the CR of a
//     line "." CR followed by anything but LF, so "<CRLF>.<CR>text" would
//     reach the session as "<CRLF>text" and be taken; other line ends are
//     taken by go-smtp as they come. Once one has arrived, the message
//     being received (or the next MAIL) is refused and the connection
//     closed after the reply: whatever the client sends next, it does not
//     mean what we would read.
//   - Lines longer than max_line_bytes, CRLF included, commands and data
//     alike: the guard scans every byte for line ends already, so it
//     enforces the limit in the same pass, where go-smtp's own limit
//     (turned off) looked at each byte once more, a fifth of the CPU of a
//     large message. Past the limit, every read fails with go-smtp's
//     ErrTooLongLine, as go-smtp's did, before it waits for the socket
//     (conn.Read): go-smtp answers 500 and hangs up.
//   - On the MX listeners, message data sent after DATA without waiting
//     for the 354 (RFC 2920: DATA ends a pipelined group), which spam
//     software and smuggling rely on: 554 5.5.0, then the connection
//     closes, as Postfix does for unauthenticated clients.

var (
	// errBareCommand refuses MAIL on a stream that held a bare CR or LF.
	errBareCommand = reply(500, 5, 2, "Syntax error: bare CR or LF line ending (RFC 5321 2.3.8)")
	errEarlyData   = errors.New("message data sent before the 354")
)

// wire is the guard's state of one connection.
type wire struct {
	ends lineEnds // the client's stream, as far as it has arrived
	// goAhead: go-smtp's 354 is held in conn.out, not sent yet. early:
	// when it went out, the client had already sent more. Both under
	// conn.mu.
	goAhead, early bool
	bare           atomic.Bool // a bare CR or LF has arrived
	long           atomic.Bool // a line over the limit has arrived
	// writes counts the connection's writes; seen is the count at the
	// tap's last Write (see wireTap.Write).
	writes atomic.Uint64
	seen   uint64
}

// wireTap is the Debug writer of a session's own smtp.Server, the one
// place above TLS where go-smtp shows the bytes it reads (io.TeeReader)
// and, through the same writer, those it writes (io.MultiWriter).
type wireTap struct {
	c *conn
	// data: a 354 is watched for, to tell data sent before it (MX
	// listeners).
	data     bool
	maxLine  int       // bytes of a line, CRLF included; 0: no limit
	dialogue io.Writer // the debug log's tap, nil below debug
}

func (t *wireTap) Write(p []byte) (int, error) {
	if t.dialogue != nil {
		t.dialogue.Write(p)
	}
	w := &t.c.wire
	next := w.ends
	bad, long := next.take(p, t.maxLine)
	long = long || w.long.Load()
	// Replies are whole lines, which leave the client's stream at a line
	// start if they found it at one; so bytes that do the same need not
	// be told apart from a reply, and the caller (which costs a stack
	// walk) is asked only about the rest: data, and pipelined commands
	// read in parts. A reply beginning 354 is always asked about. And a
	// reply is written to the connection just before it is handed here
	// (io.MultiWriter), so bytes with no write since the last call are
	// bytes read: message data, a buffer at a time, needs no stack walk.
	goAhead := t.data && len(p) >= 4 && string(p[:4]) == "354 "
	writes := w.writes.Load()
	wrote := writes != w.seen
	w.seen = writes
	if wrote && (bad || long || goAhead || next.mid || w.ends.mid) {
		if debugCaller() == "io.(*multiWriter).Write" {
			if goAhead {
				t.c.heldGoAhead()
			}
			return len(p), nil
		}
	}
	w.ends = next
	if bad {
		w.bare.Store(true)
	}
	if long {
		// io.TeeReader returns what this returns: go-smtp never sees
		// the line.
		w.long.Store(true)
		return 0, smtp.ErrTooLongLine
	}
	return len(p), nil
}

// heldGoAhead notes that go-smtp has just written its 354 (held in out,
// unless it had to be sent at once).
func (c *conn) heldGoAhead() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.wire.goAhead, c.wire.early = len(c.out) > 0, false
}

// sendingGoAhead runs, under c.mu, just before the held replies are sent:
// if the 354 is among them, bytes already waiting on the socket were sent
// without waiting for it.
func (c *conn) sendingGoAhead() {
	if c.wire.goAhead {
		c.wire.goAhead, c.wire.early = false, c.waiting()
	}
}

// earlyData tells whether the client sent message data before our 354:
// asked once the session has the data's first bytes, it is true if they
// were already read (by go-smtp or TLS) before the 354 went out, or
// waiting on the socket when it did.
func (c *conn) earlyData() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.wire.goAhead || c.wire.early
}

// waiting reports whether the client's bytes not read yet by go-smtp are
// waiting: read ahead, or on the socket.
func (c *conn) waiting() bool {
	return c.ahead.n.Load() > 0 || c.socketHolds() > 0
}

// socketHolds is how many bytes the socket holds, not read yet.
func (c *conn) socketHolds() int {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return 0
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return 0
	}
	n := 0
	raw.Control(func(fd uintptr) { n, _ = unix.IoctlGetInt(int(fd), unix.SIOCINQ) })
	return n
}

// bareCommands refuses MAIL, and hangs up after it, once the client's
// stream has held a bare CR or LF.
func (s *session) bareCommands() error {
	if !s.conn.wire.bare.Load() {
		return nil
	}
	s.conn.hangUp.Store(true)
	return s.refuse(errBareCommand, "bare CR or LF in the command stream")
}

// guarded is the message data with the guard's verdicts: the first Read
// that finds a bare CR or LF arrived fails with errBadLineEnding (the
// flag is raised when go-smtp reads the bytes, so before any of them
// reaches the session); on a session that must not pipeline, the first
// bytes fail with errEarlyData if they came before the 354.
type guarded struct {
	r     io.Reader
	c     *conn
	first bool // the next Read is the first, and early data is refused
}

func (s *session) guarded(r io.Reader) io.Reader {
	return &guarded{r: r, c: s.conn, first: s.untrusted()}
}

func (g *guarded) Read(p []byte) (int, error) {
	if g.c.wire.bare.Load() {
		return 0, errBadLineEnding
	}
	n, err := g.r.Read(p)
	if g.c.wire.bare.Load() {
		return 0, errBadLineEnding
	}
	if g.first && n > 0 {
		g.first = false
		if g.c.earlyData() {
			return 0, errEarlyData
		}
	}
	return n, err
}

// lineEnds follows a stream for its first bare CR or LF. The one exception
// is a CRLF split between two BDAT chunks (RFC 3030 allows any split):
// CR, then the BDAT command line, then LF. In DATA, the same bytes leave a
// bare LF in the message, which strictCRLF refuses.
type lineEnds struct {
	mid bool // inside a line
	cr  bool // the last byte was a CR
	// split > 0: a CR was followed by something else; what follows must
	// be a BDAT line then LF. 1 to 5: that many octets of "BDAT " read;
	// then splitLine, splitCR, splitLF.
	split int
	n     int // octets of the line so far (in a split, of the BDAT line too)
}

const (
	splitLine = len("BDAT ") + 1 + iota // in the rest of the BDAT line
	splitCR                             // its CR read
	splitLF                             // its CRLF read: the chunk's LF must come
)

// take follows p and reports whether it holds a bare CR or LF, and
// whether a line in it grew longer than limit octets (if limit > 0).
func (l *lineEnds) take(p []byte, limit int) (bad, long bool) {
	for len(p) > 0 {
		if l.cr || l.split > 0 {
			if !l.step(p[0]) {
				return true, long
			}
			p = p[1:]
		} else {
			i := bytes.IndexByte(p, '\r')
			if i < 0 {
				i = len(p)
			}
			if bytes.IndexByte(p[:i], '\n') >= 0 {
				return true, long
			}
			switch {
			case i == len(p):
				l.mid = true
				l.n += i
				p = nil
			case i+1 < len(p) && p[i+1] == '\n':
				l.mid = false
				l.n += i + 2
				p = p[i+2:]
			default:
				l.mid, l.cr = true, true
				l.n += i + 1
				p = p[i+1:]
			}
		}
		long = long || limit > 0 && l.n > limit
		if !l.mid {
			l.n = 0
		}
	}
	return false, long
}

// step takes one byte after a CR not yet followed by LF, or in a split.
func (l *lineEnds) step(b byte) bool {
	l.n++
	if l.cr {
		l.cr = false
		if b == '\n' {
			l.mid = false
			return true
		}
		l.split = 1
	}
	switch {
	case l.split < splitLine:
		if 'a' <= b && b <= 'z' {
			b -= 'a' - 'A'
		}
		if b != "BDAT "[l.split-1] {
			return false
		}
		l.split++
	case l.split == splitLine && b == '\r':
		l.split = splitCR
	case l.split == splitLine:
		return b != '\n'
	case l.split == splitCR && b == '\n', l.split == splitLF && b == '\n':
		if l.split++; l.split > splitLF {
			l.split, l.mid = 0, false
		}
	default:
		return false
	}
	return true
}
