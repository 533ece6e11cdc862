package smtptest

import (
	"bytes"
	"io"
	"net"

	"github.com/emersion/go-smtp"
)

// mxSession is one SMTP session on a fake MX.
type mxSession struct {
	m    *MX
	conn *smtp.Conn
	from string
	opts smtp.MailOptions
	to   []string
}

func (s *mxSession) Reset() {
	s.from, s.opts, s.to = "", smtp.MailOptions{}, nil
}

func (s *mxSession) Logout() error { return nil }

func (s *mxSession) Mail(from string, opts *smtp.MailOptions) error {
	if f := s.m.opts.MailReply; f != nil {
		if e := f(from); e != nil {
			return e
		}
	}
	s.from = from
	if opts != nil {
		s.opts = *opts
	}
	return nil
}

func (s *mxSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if f := s.m.opts.RcptReply; f != nil {
		if e := f(to); e != nil {
			return e
		}
	}
	s.to = append(s.to, to)
	return nil
}

func (s *mxSession) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if f := s.m.opts.DataReply; f != nil {
		if e := f(); e != nil {
			return e
		}
	}
	if s.m.opts.NoData {
		data = nil
	}
	_, isTLS := s.conn.TLSConnectionState()
	s.m.record(Received{
		From: s.from,
		To:   append([]string(nil), s.to...),
		Data: data,
		TLS:  isTLS,
		Helo: s.conn.Hostname(),
		Size: s.opts.Size,
		Body: s.opts.Body,
		UTF8: s.opts.UTF8,
	})
	return nil
}

// no8BitMIME drops the 8BITMIME line of EHLO replies. go-smtp's server
// writes and flushes one reply line at a time and never puts 8BITMIME last,
// so dropping the whole line keeps the reply well-formed.
type no8BitMIME struct{ net.Conn }

var line8BitMIME = []byte("250-8BITMIME\r\n")

func (c *no8BitMIME) Write(p []byte) (int, error) {
	if !bytes.Contains(p, line8BitMIME) {
		return c.Conn.Write(p)
	}
	if _, err := c.Conn.Write(bytes.ReplaceAll(p, line8BitMIME, nil)); err != nil {
		return 0, err
	}
	return len(p), nil
}
