package smtpd

import (
	"sync"
	"sync/atomic"
)

// go-smtp reads the connection through a bufio.Reader of 4 KiB, its size
// fixed: a large message came in with a read(2) per 4 KiB, and those
// reads, with the TCP window updates each one sends, were a third of the
// CPU of a 1 MiB message. While a message is received, the connection
// reads aheadSize from the socket at once and hands it out to go-smtp 4
// KiB at a time. What is read ahead stays in order for go-smtp (commands
// the client sent after the message's end are read from here next), and
// counts as waiting for the early-data check (conn.waiting). The buffer
// goes back to a pool as soon as it is empty, so an idle session holds
// none.
const aheadSize = 64 << 10

var aheadPool = sync.Pool{New: func() any { return new([aheadSize]byte) }}

// ahead is a connection's read-ahead buffer, used by its reading
// goroutine only; n is also read by conn.waiting, from any goroutine.
type ahead struct {
	buf  *[aheadSize]byte
	r, w int
	n    atomic.Int32 // w - r
}

// read hands out what was read ahead, 0 if nothing is.
func (a *ahead) read(p []byte) int {
	if a.buf == nil {
		return 0
	}
	k := copy(p, a.buf[a.r:a.w])
	a.r += k
	a.n.Store(int32(a.w - a.r))
	if a.r == a.w {
		aheadPool.Put(a.buf)
		a.buf, a.r, a.w = nil, 0, 0
	}
	return k
}

// fill reads from the socket once, into a buffer from the pool, and hands
// out what it can of that to p.
func (a *ahead) fill(p []byte, read func([]byte) (int, error)) (int, error) {
	a.buf = aheadPool.Get().(*[aheadSize]byte)
	n, err := read(a.buf[:])
	a.r, a.w = 0, n
	return a.read(p), err
}
