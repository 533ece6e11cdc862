package smtpd

import (
	"cmp"
	"context"
	"io"
	"strings"
	"time"

	"facteur/internal/auth"
	"facteur/internal/maildir"
)

// checked tells whether the senders of the session's mail are judged
// (SPF, DKIM, DMARC): mail from the Internet, when checks are on.
func (s *session) checked() bool {
	return s.untrusted() && s.srv.opts.Checks != nil
}

// checkTimeout bounds the lookups of the checks of one message (SPF from
// MAIL FROM, DKIM and DMARC to the end of DATA): past it they are
// temperrors, and the sender hears 451 4.4.3.
const checkTimeout = time.Minute

// startSPF checks the envelope sender while the client sends its
// recipients and data; the verdict is waited for at the end of DATA.
func (s *session) startSPF(from string) {
	ctx, cancel := context.WithTimeout(context.Background(), checkTimeout)
	spf := make(chan auth.SPF, 1)
	ip, helo := s.conn.ip, s.c.Hostname()
	go func() { spf <- s.srv.opts.Checks.SPF(ctx, ip, helo, from) }()
	s.spf, s.stopSPF = spf, cancel
}

// check is what decides, once a message from the Internet is whole,
// where it goes or how it is refused: the verdicts on its sender first,
// then rspamd, which reads the message with our Authentication-Results
// on top; nil when nothing is to be checked.
func (s *session) check(id string) maildir.Check {
	spam := s.spamCheck(id)
	if s.message == nil {
		return spam
	}
	return func(msg io.Reader, size int64) (maildir.Verdict, error) {
		folder, err := s.judge()
		if err != nil {
			return maildir.Verdict{}, err
		}
		ar := s.authResults
		var edit func([]byte) []byte
		if spam != nil {
			sv, err := spam(io.MultiReader(strings.NewReader(ar), msg), size+int64(len(ar)))
			if err != nil {
				return maildir.Verdict{}, err
			}
			folder, edit = cmp.Or(folder, sv.Folder), sv.Edit
		}
		return maildir.Verdict{Folder: folder, Edit: func(h []byte) []byte {
			if edit != nil {
				h = edit(h)
			}
			// First of all: RFC 8601 5 has it added at the top.
			return append([]byte(ar), h...)
		}}, nil
	}
}

// judge is where the verdicts on the sender of a message are known, once
// it has been read whole: s.verdict, and s.authResults, the header that
// records them. It returns the folder they call for, or the refusal.
func (s *session) judge() (folder string, err error) {
	mode := s.srv.opts.CheckMode
	v := s.message.Verdict(<-s.spf, mode != auth.Off)
	s.verdict, s.authResults = v, v.Header(s.srv.opts.Checks.AuthservID())
	m := s.srv.opts.Metrics
	m.InboundVerdict("spf", string(v.SPF.Result))
	if len(v.DKIM) == 0 {
		m.InboundVerdict("dkim", string(auth.None))
	}
	for _, d := range v.DKIM {
		m.InboundVerdict("dkim", string(d.Result))
	}
	if v.DMARC.Result != "" {
		m.InboundVerdict("dmarc", string(v.DMARC.Result))
	}
	action, why := v.Action(mode)
	if rep := verdictReply(action, why); rep != nil {
		return "", rep
	}
	if action == auth.Junk {
		return maildir.Junk, nil
	}
	return "", nil
}
