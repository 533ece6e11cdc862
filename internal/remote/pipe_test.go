package remote

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// scripted is a server that plays one session by hand, for what the fake MX
// on go-smtp's server cannot show: in which order and in which groups the
// client sends its commands. It greets, answers EHLO with caps, then runs
// play, which reports what is wrong with t.Errorf.
type scripted struct {
	t    *testing.T
	tp   *textproto.Conn
	conn net.Conn
	br   *bufio.Reader
}

func playOn(t *testing.T, e *env, caps []string, play func(s *scripted)) (done chan struct{}) {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.2", strconv.Itoa(e.port)))
	if err != nil {
		t.Fatal(err)
	}
	done = make(chan struct{})
	go func() {
		defer close(done)
		defer l.Close()
		conn, err := l.Accept()
		if err != nil {
			t.Errorf("accept: %v", err)
			return
		}
		defer conn.Close()
		// A deadline for a failing test: a client that waits for a reply
		// the script withholds shows up as a read timing out here.
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		br := bufio.NewReader(conn)
		s := &scripted{t: t, tp: textproto.NewConn(struct {
			io.Reader
			io.WriteCloser
		}{br, conn}), conn: conn, br: br}
		s.say("220 scripted.test ESMTP")
		s.expect("EHLO relay.test")
		ehlo := append([]string{"scripted.test"}, caps...)
		for k, line := range ehlo {
			sep := "-"
			if k == len(ehlo)-1 {
				sep = " "
			}
			s.say("250" + sep + line)
		}
		play(s)
	}()
	t.Cleanup(func() { l.Close(); <-done })
	return done
}

// say sends reply lines, several in one write when they are joined by CRLF.
func (s *scripted) say(reply string) {
	if err := s.tp.PrintfLine("%s", reply); err != nil {
		s.t.Errorf("script: writing %q: %v", reply, err)
	}
}

// expect reads the next command and checks its beginning.
func (s *scripted) expect(prefix string) {
	line, err := s.tp.ReadLine()
	if err != nil {
		s.t.Errorf("script: waiting for %q: %v", prefix, err)
		return
	}
	if !strings.HasPrefix(line, prefix) {
		s.t.Errorf("script: got %q, want %q", line, prefix)
	}
}

// nothingMore checks that the client sends nothing until it has a reply.
func (s *scripted) nothingMore(after string) {
	s.conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	defer s.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := s.br.Peek(1); !errors.Is(err, os.ErrDeadlineExceeded) {
		s.t.Errorf("script: the client sent more after %q before its reply (%v)", after, err)
	}
}

// body reads a message up to its final dot.
func (s *scripted) body() string {
	b, err := io.ReadAll(s.tp.DotReader())
	if err != nil {
		s.t.Errorf("script: reading the body: %v", err)
	}
	return string(b)
}

// hungUp checks that the client closes the connection without a word more.
func (s *scripted) hungUp() {
	if line, err := s.tp.ReadLine(); err != io.EOF {
		s.t.Errorf("script: got %q (%v), want the connection closed", line, err)
	}
}

// With PIPELINING the client sends the whole envelope before any reply
// (RFC 2920), the next envelope right after a final dot, and RSET ahead of
// the next one when a transaction was left open. The script answers
// nothing until it has read DATA: a client waiting for the reply to MAIL,
// or to the dot, would stall it.
func TestPipelining(t *testing.T) {
	e := newEnv(t)
	e.client.IdleTimeout = -1
	var body1, body2 string
	done := playOn(t, e, []string{"PIPELINING", "SIZE 100000"}, func(s *scripted) {
		s.expect("MAIL FROM:<a@sender.test> SIZE=")
		s.expect("RCPT TO:<alice@example.test>")
		s.expect("RCPT TO:<bob@example.test>")
		s.expect("DATA")
		s.say("250 2.1.0 ok\r\n250 2.1.5 ok\r\n550 5.1.1 no bob here\r\n354 go on")
		body1 = s.body()

		// q2's envelope follows the final dot before its reply; MAIL is
		// refused, and the RCPT and DATA behind it come anyway.
		s.expect("MAIL FROM:<a@sender.test>")
		s.expect("RCPT TO:<carol@example.test>")
		s.expect("DATA")
		s.say("250 2.0.0 queued as 1\r\n452 4.3.1 try later\r\n503 5.5.1 MAIL first\r\n503 5.5.1 MAIL first")

		s.expect("RSET")
		s.expect("MAIL FROM:<a@sender.test>")
		s.expect("RCPT TO:<dave@example.test>")
		s.expect("DATA")
		s.say("250 2.0.0 ok\r\n250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go on")
		body2 = s.body()
		s.say("250 2.0.0 queued as 2")
		s.expect("QUIT")
		s.say("221 bye")
	})
	out := e.deliverSingle(newMsg("q1", "alice@example.test", "bob@example.test"), newMsg("q2", "carol@example.test"), newMsg("q3", "dave@example.test"))
	<-done
	if r := out[0][0]; r.Status != Sent || r.Enhanced != "2.0.0" || r.Text != "queued as 1" {
		t.Errorf("alice: %+v", r)
	}
	if r := out[0][1]; r.Status != Permanent || r.Code != 550 || r.Enhanced != "5.1.1" {
		t.Errorf("bob: %+v", r)
	}
	if r := out[1][0]; r.Status != Transient || !strings.Contains(r.Text, "452 4.3.1 try later") {
		t.Errorf("carol: %+v", r)
	}
	if r := out[2][0]; r.Status != Sent || r.Text != "queued as 2" {
		t.Errorf("dave: %+v", r)
	}
	if body1 != strings.ReplaceAll(body, "\r\n", "\n") || body2 != body1 {
		t.Errorf("bodies %q and %q, want %q", body1, body2, body)
	}
}

// Without PIPELINING each command waits for its reply, and a refusal ends
// the transaction where it stands: no RCPT after a refused MAIL, no DATA
// without a recipient. NoPipelining does the same with a server that
// offers it.
func TestLockStepWithoutPipelining(t *testing.T) {
	for name, tc := range map[string]struct {
		ext []string
		off bool
	}{
		"not offered":         {[]string{"8BITMIME"}, false},
		"offered, turned off": {[]string{"PIPELINING", "8BITMIME"}, true},
	} {
		t.Run(name, func(t *testing.T) { lockStep(t, tc.ext, tc.off) })
	}
}

func lockStep(t *testing.T, ext []string, off bool) {
	e := newEnv(t)
	e.client.IdleTimeout = -1
	e.client.NoPipelining = off
	done := playOn(t, e, ext, func(s *scripted) {
		for _, step := range []struct{ cmd, reply string }{
			{"MAIL FROM:<a@sender.test>", "250 ok"},
			{"RCPT TO:<alice@example.test>", "250 ok"},
			{"RCPT TO:<bob@example.test>", "550 5.1.1 no bob"},
			{"DATA", "354 go on"},
		} {
			s.expect(step.cmd)
			s.nothingMore(step.cmd)
			s.say(step.reply)
		}
		s.body()
		s.nothingMore("the final dot")
		s.say("250 2.0.0 done")

		s.expect("MAIL FROM:<a@sender.test>")
		s.nothingMore("MAIL")
		s.say("550 5.7.1 not from you")

		s.expect("RSET")
		s.say("250 ok")
		s.expect("MAIL FROM:<a@sender.test>")
		s.say("250 ok")
		s.expect("RCPT TO:<erin@example.test>")
		s.nothingMore("RCPT")
		s.say("550 5.1.1 no erin")
		s.expect("QUIT")
		s.say("221 bye")
	})
	out := e.deliverSingle(newMsg("q1", "alice@example.test", "bob@example.test"), newMsg("q2", "carol@example.test"), newMsg("q3", "erin@example.test"))
	<-done
	if out[0][0].Status != Sent || out[0][1].Status != Permanent || out[1][0].Status != Permanent || out[1][0].Enhanced != "5.7.1" || out[2][0].Enhanced != "5.1.1" {
		t.Errorf("results %+v", out)
	}
}

// The replies a pipelined envelope can get that leave nothing to send:
// a 354 though every recipient was refused, where the client sends no
// body and no lone dot either, which a server might take for an empty
// message, but hangs up; and a connection lost in the middle of the
// replies, which leaves every recipient whose reply never came to a later
// attempt.
func TestPipelineEnds(t *testing.T) {
	for name, tc := range map[string]struct {
		replies string
		lost    bool     // the script, not the client, ends the connection
		dot     bool     // a lone dot ends a DATA the server should have refused (RFC 2920 3.1)
		want    []Result // Status and Enhanced, per recipient
	}{
		"354 without a recipient": {"250 ok\r\n550 5.1.1 no alice\r\n550 5.1.1 no bob\r\n354 go on", false, true,
			[]Result{{Status: Permanent, Enhanced: "5.1.1"}, {Status: Permanent, Enhanced: "5.1.1"}}},
		"lost after the first RCPT": {"250 ok\r\n550 5.1.1 no alice", true, false,
			[]Result{{Status: Permanent, Enhanced: "5.1.1"}, {Status: Transient, Enhanced: "4.4.2"}}},
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			e.client.IdleTimeout = -1 // QUIT at the end of the call
			done := playOn(t, e, []string{"PIPELINING"}, func(s *scripted) {
				for _, cmd := range []string{"MAIL", "RCPT TO:<alice", "RCPT TO:<bob", "DATA"} {
					s.expect(cmd)
				}
				s.say(tc.replies)
				if tc.dot {
					s.expect(".")
					s.say("554 5.5.1 no valid recipients")
					s.expect("QUIT")
				} else if !tc.lost {
					s.hungUp()
				}
			})
			out := e.deliverSingle(newMsg("q1", "alice@example.test", "bob@example.test"))
			<-done
			for j, w := range tc.want {
				if r := out[0][j]; r.Status != w.Status || r.Enhanced != w.Enhanced {
					t.Errorf("recipient %d: %+v, want %v %s", j, r, w.Status, w.Enhanced)
				}
			}
		})
	}
}

// A group holds at most groupMax commands: with more recipients the client
// reads the replies to the first group before it writes the rest, so that
// neither end fills its buffers writing to one that does not read.
func TestPipelineGroupBound(t *testing.T) {
	e := newEnv(t)
	rcpts := make([]string, 150)
	for k := range rcpts {
		rcpts[k] = fmt.Sprintf("r%d@example.test", k)
	}
	done := playOn(t, e, []string{"PIPELINING"}, func(s *scripted) {
		s.expect("MAIL")
		for k := range groupMax - 1 {
			s.expect(fmt.Sprintf("RCPT TO:<r%d@", k))
		}
		s.nothingMore("the first group")
		s.say("250 ok" + strings.Repeat("\r\n250 ok", groupMax-1))
		for k := groupMax - 1; k < len(rcpts); k++ {
			s.expect(fmt.Sprintf("RCPT TO:<r%d@", k))
		}
		s.expect("DATA")
		s.say(strings.Repeat("250 ok\r\n", len(rcpts)-groupMax+1) + "354 go on")
		s.body()
		s.say("250 2.0.0 done")
	})
	out := e.deliverSingle(newMsg("q1", rcpts...))
	<-done
	wantStatus(t, out, Sent, "mx1.example.test")
}

// The reply to a final dot sent ahead of the next envelope is read before
// that envelope's replies, and counts for its own message only: a refusal
// of the first message, or a connection lost before that reply came.
func TestDotReplyReadLate(t *testing.T) {
	for name, tc := range map[string]struct {
		replies string // to the first dot and the second envelope; "" hangs up
		first   Result
		second  Status
	}{
		"first refused": {"554 5.6.0 content refused\r\n250 ok\r\n250 ok\r\n354 go on", Result{Status: Permanent, Enhanced: "5.6.0"}, Sent},
		"lost":          {"", Result{Status: Transient, Enhanced: "4.4.2"}, Transient},
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			done := playOn(t, e, []string{"PIPELINING"}, func(s *scripted) {
				for _, cmd := range []string{"MAIL", "RCPT TO:<alice", "DATA"} {
					s.expect(cmd)
				}
				s.say("250 ok\r\n250 ok\r\n354 go on")
				s.body()
				for _, cmd := range []string{"MAIL", "RCPT TO:<bob", "DATA"} {
					s.expect(cmd)
				}
				if tc.replies == "" {
					return
				}
				s.say(tc.replies)
				s.body()
				s.say("250 2.0.0 queued")
				s.expect("QUIT")
				s.say("221 bye")
			})
			e.client.IdleTimeout = -1
			out := e.deliverSingle(newMsg("q1", "alice@example.test"), newMsg("q2", "bob@example.test"))
			<-done
			if r := out[0][0]; r.Status != tc.first.Status || r.Enhanced != tc.first.Enhanced {
				t.Errorf("first message: %+v, want %v %s", r, tc.first.Status, tc.first.Enhanced)
			}
			if r := out[1][0]; r.Status != tc.second {
				t.Errorf("second message: %+v, want %v", r, tc.second)
			}
		})
	}
}
