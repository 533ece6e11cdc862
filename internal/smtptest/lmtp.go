package smtptest

import (
	"io"
	"log"
	"net"
	"sync"
	"testing"

	"github.com/emersion/go-smtp"
)

// LMTPServer is a fake LMTP server (RFC 2033) on go-smtp's server: a
// mailbox store that answers each recipient on its own after the dot.
type LMTPServer struct {
	srv *smtp.Server
	l   net.Listener
	// RcptReply answers RCPT, DataReply each recipient at the end of DATA;
	// nil, or a nil result, accepts.
	rcptReply func(rcpt string) *smtp.SMTPError
	dataReply func(rcpt string) *smtp.SMTPError

	mu        sync.Mutex
	delivered map[string][][]byte // by recipient, the messages stored
	sessions  int
}

// NewLMTP starts a fake LMTP server listening on network and address
// ("unix" and a socket path, or "tcp" and "127.0.0.1:0"), stopped by
// t.Cleanup.
func NewLMTP(t testing.TB, network, address string, rcptReply, dataReply func(rcpt string) *smtp.SMTPError) *LMTPServer {
	t.Helper()
	l, err := net.Listen(network, address)
	if err != nil {
		t.Fatalf("smtptest: LMTP listen: %v", err)
	}
	s := &LMTPServer{l: l, rcptReply: rcptReply, dataReply: dataReply, delivered: map[string][][]byte{}}
	s.srv = smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		s.mu.Lock()
		s.sessions++
		s.mu.Unlock()
		return &lmtpSession{s: s}, nil
	}))
	s.srv.LMTP = true
	s.srv.Domain = "lmtp.test"
	s.srv.ErrorLog = log.New(io.Discard, "", 0)
	go s.srv.Serve(l)
	t.Cleanup(func() { s.srv.Close() })
	return s
}

// Addr is the address the server listens on.
func (s *LMTPServer) Addr() string { return s.l.Addr().String() }

// Delivered returns the messages stored for rcpt, as the LMTP recipient.
func (s *LMTPServer) Delivered(rcpt string) [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.delivered[rcpt]
}

// Sessions counts the connections the server took.
func (s *LMTPServer) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions
}

type lmtpSession struct {
	s     *LMTPServer
	rcpts []string
}

func (l *lmtpSession) Reset()        { l.rcpts = nil }
func (l *lmtpSession) Logout() error { return nil }

func (l *lmtpSession) Mail(string, *smtp.MailOptions) error { return nil }

func (l *lmtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if f := l.s.rcptReply; f != nil {
		if e := f(to); e != nil {
			return e
		}
	}
	l.rcpts = append(l.rcpts, to)
	return nil
}

// Data is never called: the server speaks LMTP, and calls LMTPData.
func (l *lmtpSession) Data(io.Reader) error {
	return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 5, 1}, Message: "LMTP only"}
}

func (l *lmtpSession) LMTPData(r io.Reader, status smtp.StatusCollector) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	for _, rcpt := range l.rcpts {
		var e *smtp.SMTPError
		if f := l.s.dataReply; f != nil {
			e = f(rcpt)
		}
		if e == nil {
			l.s.mu.Lock()
			l.s.delivered[rcpt] = append(l.s.delivered[rcpt], data)
			l.s.mu.Unlock()
			status.SetStatus(rcpt, nil)
			continue
		}
		status.SetStatus(rcpt, e)
	}
	return nil
}
