package smtpd

import (
	"bytes"
	"container/list"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Storing a message (writing it, waiting for the group sync, renaming,
// waiting again) wakes its goroutine several times. With thousands of
// sessions at once on a few cores, every wake-up queues behind every
// other runnable session, so a transaction under way takes as long as
// the whole crowd. So, as Postfix's process limit does per session, only
// so many messages are received and stored at once: a session takes its
// turn at DATA, before the 354 goes out, and the client sends its message
// once its turn has come. The transactions under way finish first, and a
// client waits for its 354, as a Postfix client waits for a free process
// (RFC 5321 gives the 354 two minutes, the final reply ten).
//
// A turn is for a message that arrives at once: it is read ahead whole
// into memory (stageBytes at most, most mail), then stored. A session
// gives its turn back while it reads if the message is larger (it is
// stored as it streams in, its sender's pace bounds it) or slower than
// stageGrace (it takes a turn again, ahead of the others, once it holds
// the whole message): a slow client cannot hold the turns of the others.

// stageBytes bounds the message read ahead.
const stageBytes = 64 << 10

// stageGrace is how long a turn waits for its message.
var stageGrace = time.Second

// storingPerCore is how many messages are stored at once per core unless
// Options.Storing says otherwise: enough for the group sync to gather
// many per sync, few enough that the goroutines of those stored do not
// queue behind each other at each wake-up.
const storingPerCore = 32

// turns hands out the turns to store a message, in the order they are
// asked for, except that a session that gave its turn back for a slow
// sender and now holds its whole message goes first: it did wait its turn
// once, and the time it lost may be the crowd's, not its sender's (with
// thousands of sessions on two cores, a wake-up can take a second).
type turns struct {
	mu      sync.Mutex
	free    int
	waiting list.List // of chan struct{}, closed when the turn is handed over
}

func newTurns(n int) *turns {
	if n <= 0 {
		n = storingPerCore * runtime.GOMAXPROCS(0)
	}
	return &turns{free: n}
}

// take waits for a turn; first puts the caller ahead of the others.
func (t *turns) take(first bool) *turn {
	tk := &turn{t: t}
	tk.held.Store(true)
	t.mu.Lock()
	if t.free > 0 {
		t.free--
		t.mu.Unlock()
		return tk
	}
	ready := make(chan struct{})
	if first {
		t.waiting.PushFront(ready)
	} else {
		t.waiting.PushBack(ready)
	}
	t.mu.Unlock()
	<-ready
	return tk
}

// handOver gives a turn to the next waiter, or keeps it free.
func (t *turns) handOver() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e := t.waiting.Front(); e != nil {
		close(t.waiting.Remove(e).(chan struct{}))
		return
	}
	t.free++
}

// turn is one session's turn, given back once.
type turn struct {
	t    *turns
	held atomic.Bool
}

func (tk *turn) give() {
	if tk.held.CompareAndSwap(true, false) {
		tk.t.handOver()
	}
}

// receive reads the message of a session that holds tk, and returns it
// with the turn to store it under: tk, or a new one if tk was given back
// for a slow sender; nil for a message too large to be read ahead.
func (t *turns) receive(tk *turn, r io.Reader) (*staged, *turn) {
	slow := time.AfterFunc(stageGrace, tk.give)
	st := stage(r)
	slow.Stop()
	switch {
	case !st.whole:
		tk.give()
		return st, nil
	case !tk.held.Load():
		return st, t.take(true)
	}
	return st, tk
}

// stagedBufs recycles the read-ahead buffers.
var stagedBufs = sync.Pool{New: func() any { b := make([]byte, 0, 8<<10); return &b }}

// staged is a message whose start has been read ahead: the whole of it
// when whole, else the first stageBytes, then the rest from the stream.
type staged struct {
	buf   *[]byte
	whole bool
	r     io.Reader // what the session reads the message from
}

// stage reads r ahead, up to stageBytes or to its end. An error other
// than the end is kept, for the reader to meet after the bytes before it.
func stage(r io.Reader) *staged {
	bp := stagedBufs.Get().(*[]byte)
	b := (*bp)[:0]
	var err error
	for len(b) < stageBytes && err == nil {
		if len(b) == cap(b) {
			b = append(make([]byte, 0, min(2*cap(b), stageBytes)), b...)
		}
		var n int
		n, err = r.Read(b[len(b):min(cap(b), stageBytes)])
		b = b[:len(b)+n]
	}
	*bp = b
	st := &staged{buf: bp}
	switch err {
	case io.EOF:
		st.whole, st.r = true, bytes.NewReader(b)
	case nil:
		st.r = io.MultiReader(bytes.NewReader(b), r)
	default:
		st.r = io.MultiReader(bytes.NewReader(b), errReader{err})
	}
	return st
}

// release gives the buffer back; the message is not read after.
func (st *staged) release() {
	if cap(*st.buf) <= stageBytes {
		stagedBufs.Put(st.buf)
	}
	st.buf, st.r = nil, nil
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }
