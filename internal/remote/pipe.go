package remote

import (
	"bufio"
	"io"
	"net"
	"net/textproto"
	"strings"
	"time"
)

// facteur writes the commands of each mail transaction itself, and reads
// their replies: go-smtp's Client sends a command and waits for its reply
// before the next, and RFC 2920 PIPELINING lets RSET, MAIL, every RCPT and
// DATA go in one write, their replies read after, and a message's final dot
// go with the next message's commands. On a relay's steady stream that
// leaves about one round trip per message where there were four, and
// spares system calls at both ends. go-smtp's Client still greets, says
// EHLO and QUIT on the same connection, with its own buffers: a server
// speaks only when spoken to, so at each hand-over between the two neither
// buffer holds a byte of the other's replies.

// bodyBuffer holds a usual message and its final dot, so that the body goes
// in one write; larger ones go in writes of this size.
const bodyBuffer = 16 << 10

// wire is a session's connection as its transactions use it: every read
// and every write has the command timeout, since go-smtp's deadlines cover
// only its own commands.
type wire struct {
	r *textproto.Reader
	w *bufio.Writer
}

func newWire(conn net.Conn, timeout time.Duration) wire {
	d := &deadlined{Conn: conn, timeout: timeout}
	return wire{r: textproto.NewReader(bufio.NewReader(d)), w: bufio.NewWriterSize(d, bodyBuffer)}
}

type deadlined struct {
	net.Conn
	timeout time.Duration
}

func (d *deadlined) Read(p []byte) (int, error) {
	d.Conn.SetReadDeadline(time.Now().Add(d.timeout))
	return d.Conn.Read(p)
}

func (d *deadlined) Write(p []byte) (int, error) {
	d.Conn.SetWriteDeadline(time.Now().Add(d.timeout))
	return d.Conn.Write(p)
}

// reply reads one reply. An error, from the connection or a malformed reply,
// leaves the session out of step: it is lost.
func (s *session) reply() (Result, error) {
	code, msg, err := s.wire.r.ReadResponse(0)
	if err != nil {
		return Result{}, err
	}
	enhanced, text := splitEnhanced(msg)
	if enhanced != "" {
		// RFC 2034 repeats the code on every line of the reply.
		text = strings.ReplaceAll(text, "\n"+enhanced+" ", "\n")
	}
	r := s.stamp(newReply(code, enhanced, text))
	if r.fatal() {
		s.broken(r)
	}
	return r, nil
}

// lost is the result of every command whose reply never came.
func (s *session) lost(err error) Result {
	r := s.stamp(Result{Status: Transient, Enhanced: "4.4.2", Text: "connection lost: " + err.Error()})
	s.broken(r)
	return r
}

// broken records the first sign that the server ended the session, a 421
// or a lost connection, unless we had closed it first.
func (s *session) broken(r Result) {
	if !s.closed && s.failure.Status == 0 {
		s.failure = r
	}
}

// pipe carries the commands of one transaction, which its caller reads the
// replies of in order with next, and may stop reading at any point. With
// PIPELINING the commands go up to groupMax at a time; without, each is
// written only when next asks for its reply, so a caller that stops early
// has sent nothing more.
type pipe struct {
	s     *session
	lines []string
	group int // commands per write
	sent  int // lines written
	read  int // replies read
	err   error
	data  bool // a 354 came, and the body has not been sent
}

// groupMax bounds a group, and so the replies the server writes while the
// client is still writing and not reading them: with thousands of
// recipients, both ends could fill their buffers and wait for each other.
const groupMax = 100

func (s *session) pipe(lines []string) *pipe {
	p := &pipe{s: s, lines: lines, group: 1}
	if s.pipelining {
		p.group = groupMax
	}
	return p
}

// next returns the reply to the next command, or, once the connection
// failed, the lost result and false.
func (p *pipe) next() (Result, bool) {
	if p.err == nil && p.sent == p.read {
		for end := min(p.read+p.group, len(p.lines)); p.sent < end && p.err == nil; p.sent++ {
			p.s.wire.w.WriteString(p.lines[p.sent])
			_, p.err = p.s.wire.w.WriteString("\r\n") // a bufio.Writer's error sticks: the last write reports any
		}
		if p.err == nil {
			p.err = p.s.wire.w.Flush()
		}
		p.s.resolve()
	}
	if p.err != nil {
		return p.s.lost(p.err), false
	}
	r, err := p.s.reply()
	if err != nil {
		p.err = err
		return p.s.lost(err), false
	}
	p.read++
	p.data = r.Code == 354
	return r, true
}

// body sends the message after the 354, with its final dot, and reports
// whether it did: the dot waits in the buffer, for final or the next
// group to send. A failure to read the message drops the connection: the
// dot would have the server deliver the message cut short.
func (p *pipe) body(msg io.Reader) (Result, bool) {
	p.data = false
	dw := &dotWriter{w: p.s.wire.w}
	if _, err := io.Copy(dw, msg); err != nil {
		p.s.close()
		return p.s.stamp(Result{Status: Transient, Enhanced: "4.4.2", Text: "sending message: " + err.Error()}), false
	}
	if err := dw.Close(); err != nil {
		return p.s.lost(err), false
	}
	return Result{}, true
}

// final sends what is buffered and returns the reply to the final dot.
func (s *session) final() Result {
	if err := s.wire.w.Flush(); err != nil {
		return s.lost(err)
	}
	r, err := s.reply()
	if err != nil {
		return s.lost(err)
	}
	return r
}

// resolve reads the reply to a final dot sent ahead of the next group, if
// one is due, hands it to its transaction, and reports whether the session
// survived it. When it did not, the reads that follow fail too.
func (s *session) resolve() bool {
	done := s.after
	s.after = nil
	return done == nil || done(s.final())
}

// settle leaves the session in step for the next transaction, if ok says
// it is still wanted: it reads the replies still on their way, and reports
// whether the session can go on. A 354 not followed by the body, when the
// server took MAIL or no recipient and answered DATA all the same (Postfix's
// smtp-sink does), gets a lone dot, as RFC 2920 3.1 asks: the transaction
// has no recipient, so nothing can be delivered, and the session goes on
// with the next message. The connection is dropped when ok is false with
// replies unread, or with a 354 unanswered.
func (p *pipe) settle(ok bool) bool {
	for ok && p.read < p.sent {
		r, got := p.next()
		ok = got && !r.fatal()
	}
	if p.data && ok && !p.s.lmtp { // an LMTP server would answer the dot for no one: no reply
		p.data = false
		p.s.wire.w.WriteString(".\r\n")
		r := p.s.final()
		ok = !r.fatal()
	}
	if p.data || (!ok && p.read < p.sent) {
		p.s.close()
		return false
	}
	return ok
}
