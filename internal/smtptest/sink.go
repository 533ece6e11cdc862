package smtptest

import (
	"bufio"
	"io"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Sink is a fake MX that answers like Postfix's smtp-sink: each command on
// its own, with no notion of a transaction, so that it takes RCPT and DATA
// even after it refused MAIL. Go-smtp's server, under MX, cannot be that
// sloppy, and real servers are.
type Sink struct {
	l         net.Listener
	mailReply func(from string) string
	mails     atomic.Int32
	wg        sync.WaitGroup
}

// NewSink starts a sink on ip:port that answers every MAIL with the reply
// line mailReply gives for its argument ("451 4.7.1 greylisted"), stopped
// by t.Cleanup.
func NewSink(t testing.TB, ip string, port int, mailReply func(from string) string) *Sink {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
	if err != nil {
		t.Fatalf("smtptest: sink listen: %v", err)
	}
	s := &Sink{l: l, mailReply: mailReply}
	s.wg.Go(s.serve)
	t.Cleanup(func() { l.Close(); s.wg.Wait() })
	return s
}

// Mails counts the MAIL commands the sink answered.
func (s *Sink) Mails() int { return int(s.mails.Load()) }

func (s *Sink) serve() {
	var conns sync.WaitGroup
	defer conns.Wait()
	for {
		c, err := s.l.Accept()
		if err != nil {
			return
		}
		conns.Go(func() { s.session(c) })
	}
}

func (s *Sink) session(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute))
	tp := textproto.NewConn(struct {
		io.Reader
		io.WriteCloser
	}{bufio.NewReader(c), c})
	tp.PrintfLine("220 sink.test ESMTP")
	for {
		line, err := tp.ReadLine()
		if err != nil {
			return
		}
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "EHLO":
			tp.PrintfLine("250-sink.test\r\n250-PIPELINING\r\n250 8BITMIME")
		case "MAIL":
			s.mails.Add(1)
			tp.PrintfLine("%s", s.mailReply(arg))
		case "DATA":
			tp.PrintfLine("354 go on")
			if _, err := io.Copy(io.Discard, tp.DotReader()); err != nil {
				return
			}
			tp.PrintfLine("250 2.0.0 ok")
		case "QUIT":
			tp.PrintfLine("221 2.0.0 bye")
			return
		default:
			tp.PrintfLine("250 2.0.0 ok")
		}
	}
}
