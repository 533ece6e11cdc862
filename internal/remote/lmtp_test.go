package remote

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/textproto"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"facteur/internal/smtptest"
)

func newLMTP(t *testing.T, address string) *LMTP {
	return &LMTP{Address: address, HeloName: "mx.facteur.test", ConnectTimeout: 2 * time.Second,
		CommandTimeout: 5 * time.Second, Log: slog.New(slog.NewTextHandler(t.Output(), nil))}
}

// After the final dot an LMTP server answers each recipient it took, and
// each answer settles that recipient only: delivered, deferred, refused.
func TestLMTPEachRecipientItsOwnReply(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "lmtp")
	srv := smtptest.NewLMTP(t, "unix", sock,
		func(rcpt string) *smtp.SMTPError {
			if rcpt == "dave@home.test" {
				return reply(550, smtp.EnhancedCode{5, 1, 1}, "no such user")
			}
			return nil
		},
		func(rcpt string) *smtp.SMTPError {
			switch rcpt {
			case "bob@home.test":
				return reply(552, smtp.EnhancedCode{5, 2, 2}, "Mailbox is full")
			case "carol@home.test":
				return reply(451, smtp.EnhancedCode{4, 2, 1}, "try later")
			}
			return nil
		})
	out := newLMTP(t, "unix:"+sock).Deliver(context.Background(),
		[]*Message{newMsg("q1", "alice@home.test", "bob@home.test", "carol@home.test", "dave@home.test"), newMsg("q2", "bob@home.test", "alice@home.test")})
	want := [][]struct {
		st       Status
		code     int
		enhanced string
	}{
		{{Sent, 250, "2.0.0"}, {Permanent, 552, "5.2.2"}, {Transient, 451, "4.2.1"}, {Permanent, 550, "5.1.1"}},
		{{Permanent, 552, "5.2.2"}, {Sent, 250, "2.0.0"}},
	}
	for i, rs := range want {
		for j, w := range rs {
			r := out[i][j]
			if r.Status != w.st || r.Code != w.code || r.Enhanced != w.enhanced || r.Host != "unix:"+sock {
				t.Errorf("message %d recipient %s: %+v, want %v %d %s", i, r.Rcpt, r, w.st, w.code, w.enhanced)
			}
		}
	}
	if n := len(srv.Delivered("alice@home.test")); n != 2 {
		t.Errorf("alice has %d messages, want 2", n)
	}
	if len(srv.Delivered("bob@home.test")) != 0 || len(srv.Delivered("carol@home.test")) != 0 || srv.Sessions() != 1 {
		t.Errorf("bob %d, carol %d, %d sessions", len(srv.Delivered("bob@home.test")), len(srv.Delivered("carol@home.test")), srv.Sessions())
	}
}

// A server that is down leaves every recipient transient, naming it.
func TestLMTPServerDown(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "lmtp")
	r := newLMTP(t, "unix:"+sock).Deliver(context.Background(), []*Message{newMsg("q1", "alice")})[0][0]
	if r.Status != Transient || r.Host != "unix:"+sock || !strings.Contains(r.Text, "connection failed") {
		t.Errorf("server down: %+v", r)
	}
}

// MAIL, every RCPT and DATA go in one write to a server that offers
// PIPELINING; then the body; then one reply per recipient taken. A
// recipient may be a user name alone, as Dovecot takes it.
func TestLMTPPipelined(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		conn, err := l.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		br := bufio.NewReader(conn)
		s := &scripted{t: t, tp: textproto.NewConn(struct {
			io.Reader
			io.WriteCloser
		}{br, conn}), conn: conn, br: br}
		s.say("220 lmtp.test LMTP")
		s.expect("LHLO mx.facteur.test")
		s.say("250-lmtp.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES")
		for _, cmd := range []string{"MAIL FROM:<a@sender.test>", "RCPT TO:<alice>", "RCPT TO:<bob>", "DATA"} {
			s.expect(cmd)
		}
		s.nothingMore("DATA")
		s.say("250 2.1.0 ok\r\n250 2.1.5 ok\r\n250 2.1.5 ok\r\n354 go on")
		if b := s.body(); b != strings.ReplaceAll(body, "\r\n", "\n") {
			t.Errorf("body %q", b)
		}
		s.say("250 2.0.0 <alice> saved\r\n452 4.2.2 <bob> over quota, try later")
		s.expect("QUIT")
		s.say("221 bye")
	}()
	defer l.Close()
	out := newLMTP(t, l.Addr().String()).Deliver(context.Background(), []*Message{newMsg("q1", "alice", "bob")})
	<-done
	if a, b := out[0][0], out[0][1]; a.Status != Sent || b.Status != Transient || b.Code != 452 || b.Text != "<bob> over quota, try later" {
		t.Errorf("results %+v", out[0])
	}
}

func TestParseLMTPAddress(t *testing.T) {
	for in, want := range map[string]string{
		"unix:/run/dovecot/lmtp": "unix /run/dovecot/lmtp",
		"127.0.0.1:24":           "tcp 127.0.0.1:24",
		"[::1]:24":               "tcp [::1]:24",
		"unix:run/lmtp":          "",
		"127.0.0.1":              "",
		":24":                    "",
		"host:lmtp":              "",
	} {
		n, a, err := ParseLMTPAddress(in)
		if got := strings.TrimSpace(n + " " + a); got != want || (err != nil) != (want == "") {
			t.Errorf("ParseLMTPAddress(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}
