package remote

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"facteur/internal/smtptest"
)

func TestReuseSequential(t *testing.T) {
	e := newEnv(t)
	mx1 := e.mx1(t, smtptest.MXOptions{})
	for i := range 3 {
		wantStatus(t, e.deliverSingle(newMsg(fmt.Sprint("q", i), "alice@example.test")), Sent, "mx1.example.test")
	}
	if mx1.Count() != 3 || mx1.Connections() != 1 {
		t.Errorf("%d messages over %d connections, want 3 over 1", mx1.Count(), mx1.Connections())
	}
}

func TestReuseDisabled(t *testing.T) {
	e := newEnv(t)
	e.client.IdleTimeout = -1
	mx1 := e.mx1(t, smtptest.MXOptions{})
	for i := range 2 {
		wantStatus(t, e.deliverSingle(newMsg(fmt.Sprint("q", i), "alice@example.test")), Sent, "mx1.example.test")
	}
	if mx1.Connections() != 2 {
		t.Errorf("%d connections, want 2", mx1.Connections())
	}
}

// A session left with a transaction open (every recipient refused) is reset
// before the next call uses it.
func TestReuseAfterRefusal(t *testing.T) {
	e := newEnv(t)
	mx1 := e.mx1(t, smtptest.MXOptions{RcptReply: func(rcpt string) *smtp.SMTPError {
		if rcpt == "gone@example.test" {
			return reply(550, smtp.EnhancedCode{5, 1, 1}, "no such user")
		}
		return nil
	}})
	wantStatus(t, e.deliverSingle(newMsg("q1", "gone@example.test")), Permanent, "mx1.example.test")
	wantStatus(t, e.deliverSingle(newMsg("q2", "alice@example.test")), Sent, "mx1.example.test")
	if mx1.Count() != 1 || mx1.Connections() != 1 {
		t.Errorf("%d messages over %d connections, want 1 over 1", mx1.Count(), mx1.Connections())
	}
}

// An idle session the server closed meanwhile is replaced by a new
// connection to the same host, which is not held against it: mx2 is not
// tried, and the message arrives once.
func TestReuseServerClosed(t *testing.T) {
	e := newEnv(t)
	mx1, mx2 := e.mx1(t, smtptest.MXOptions{}), e.mx2(t, smtptest.MXOptions{})
	wantStatus(t, e.deliver(newMsg("q1", "alice@example.test")), Sent, "mx1.example.test")
	mx1.Stop()
	mx1.Start()
	wantStatus(t, e.deliver(newMsg("q2", "alice@example.test")), Sent, "mx1.example.test")
	wantCounts(t, mx1, mx2, 2, 0)
	if mx1.Connections() != 2 {
		t.Errorf("%d connections, want 2", mx1.Connections())
	}
	if got := mx1.Messages(); len(got) != 2 || got[1].To[0] != "alice@example.test" {
		t.Errorf("received %+v", got)
	}
}

// The same when the server says goodbye first, with a 421 that the client
// reads as the reply to MAIL, or hangs up without a word.
func TestReuseServerDroppedIdle(t *testing.T) {
	for name, goodbye := range map[string]string{
		"421":     "421 4.4.2 idle too long, closing\r\n",
		"hang-up": "",
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			mx := smtptest.NewMX(t, "127.0.0.1", 0, smtptest.MXOptions{})
			w := newWatch(t, "127.0.0.2", e.port, mx)
			mx2 := e.mx2(t, smtptest.MXOptions{})
			wantStatus(t, e.deliver(newMsg("q1", "alice@example.test")), Sent, "mx1.example.test")
			w.dropIdle(goodbye)
			wantStatus(t, e.deliver(newMsg("q2", "alice@example.test")), Sent, "mx1.example.test")
			wantCounts(t, mx, mx2, 2, 0)
			if mx.Connections() != 2 {
				t.Errorf("%d connections, want 2", mx.Connections())
			}
		})
	}
}

// A 4xx other than 421 to the first MAIL on a reused session is the
// server's answer, not a sign of a closed session: it counts, and the next
// host is tried.
func TestReuseTransientAnswerCounts(t *testing.T) {
	e := newEnv(t)
	var mu sync.Mutex
	busy := false
	mx1 := e.mx1(t, smtptest.MXOptions{MailReply: func(string) *smtp.SMTPError {
		mu.Lock()
		defer mu.Unlock()
		if busy {
			return reply(451, smtp.EnhancedCode{4, 3, 0}, "busy")
		}
		return nil
	}})
	mx2 := e.mx2(t, smtptest.MXOptions{})
	wantStatus(t, e.deliver(newMsg("q1", "alice@example.test")), Sent, "mx1.example.test")
	mu.Lock()
	busy = true
	mu.Unlock()
	wantStatus(t, e.deliver(newMsg("q2", "alice@example.test")), Sent, "mx2.example.test")
	wantCounts(t, mx1, mx2, 1, 1)
	if mx1.Connections() != 1 {
		t.Errorf("mx1: %d connections, want 1", mx1.Connections())
	}
}

func TestIdleTimeout(t *testing.T) {
	e := newEnv(t)
	e.client.IdleTimeout = 50 * time.Millisecond
	mx := smtptest.NewMX(t, "127.0.0.1", 0, smtptest.MXOptions{})
	w := newWatch(t, "127.0.0.2", e.port, mx)
	wantStatus(t, e.deliverSingle(newMsg("q1", "alice@example.test")), Sent, "mx1.example.test")
	w.waitHangUp(t, 10*time.Second)
	if w.quitCount() != 1 {
		t.Errorf("%d QUIT, want 1", w.quitCount())
	}
	// The next call finds no idle session and connects again.
	wantStatus(t, e.deliverSingle(newMsg("q2", "alice@example.test")), Sent, "mx1.example.test")
	if mx.Connections() != 2 {
		t.Errorf("%d connections, want 2", mx.Connections())
	}
}

func TestCloseQuitsIdle(t *testing.T) {
	e := newEnv(t)
	mx := smtptest.NewMX(t, "127.0.0.1", 0, smtptest.MXOptions{})
	w := newWatch(t, "127.0.0.2", e.port, mx)
	wantStatus(t, e.deliverSingle(newMsg("q1", "alice@example.test")), Sent, "mx1.example.test")
	if w.quitCount() != 0 {
		t.Fatalf("QUIT before Close")
	}
	e.client.Close()
	if w.quitCount() != 1 {
		t.Errorf("%d QUIT after Close, want 1", w.quitCount())
	}
	w.waitHangUp(t, 10*time.Second)

	// Still usable, without keeping anything.
	wantStatus(t, e.deliverSingle(newMsg("q2", "alice@example.test")), Sent, "mx1.example.test")
	if w.quitCount() != 2 || mx.Connections() != 2 {
		t.Errorf("%d QUIT over %d connections, want 2 and 2", w.quitCount(), mx.Connections())
	}
}

// A session is kept for the policy it was opened under: a delivery that
// requires TLS never goes out on a plaintext session.
func TestReuseKeepsPoliciesApart(t *testing.T) {
	e := newEnv(t)
	ca := smtptest.NewCA(t, "mx1.example.test")
	mx1 := e.mx1(t, smtptest.MXOptions{TLS: ca.ServerTLS()})
	e.client.TLS = None
	if r := e.deliverSingle(newMsg("q1", "alice@example.test"))[0][0]; r.Status != Sent || r.TLS {
		t.Fatalf("none: %+v", r)
	}
	e.client.TLS = Required
	if r := e.deliverSingle(newMsg("q2", "alice@example.test"))[0][0]; r.Status != Sent || !r.TLS {
		t.Fatalf("required: %+v, want sent over TLS", r)
	}
	if mx1.Connections() != 2 || !mx1.Messages()[1].TLS {
		t.Errorf("required went over connection %d, TLS %v; want a second, encrypted one", mx1.Connections(), mx1.Messages()[1].TLS)
	}
	// Each policy finds its own session again.
	for _, p := range []Policy{None, Required} {
		e.client.TLS = p
		if r := e.deliverSingle(newMsg("q", "alice@example.test"))[0][0]; r.Status != Sent || r.TLS != (p == Required) {
			t.Errorf("%v again: %+v", p, r)
		}
	}
	if mx1.Connections() != 2 {
		t.Errorf("%d connections, want 2", mx1.Connections())
	}
	got := mx1.Messages()
	if got[2].TLS || !got[3].TLS {
		t.Errorf("server saw TLS %v, %v; want false, true", got[2].TLS, got[3].TLS)
	}
}

// The host name is part of what a session is kept for: another name on the
// same address (here a domain literal) does not take it, since its results
// and its certificate check are about another name.
func TestReuseKeepsHostsApart(t *testing.T) {
	e := newEnv(t)
	mx1 := e.mx1(t, smtptest.MXOptions{})
	wantStatus(t, e.deliverSingle(newMsg("q1", "alice@example.test")), Sent, "mx1.example.test")
	e.dns.MX("other.test", 10, "mx1.other.test")
	e.dns.A("mx1.other.test", "127.0.0.2")
	out := e.client.Deliver(context.Background(), "other.test", []*Message{newMsg("q2", "alice@other.test")})
	wantStatus(t, out, Sent, "mx1.other.test")
	if mx1.Connections() != 2 {
		t.Errorf("%d connections, want 2", mx1.Connections())
	}
}

func TestReuseConcurrent(t *testing.T) {
	e := newEnv(t)
	e.client.Log = nil
	mx1 := e.mx1(t, smtptest.MXOptions{})
	const workers, calls = 8, 20
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range calls {
				out := e.deliverSingle(newMsg(fmt.Sprintf("q%d.%d", w, i), "alice@example.test"))
				if r := out[0][0]; r.Status != Sent {
					t.Errorf("worker %d call %d: %+v", w, i, r)
				}
			}
		})
	}
	wg.Wait()
	if mx1.Count() != workers*calls {
		t.Errorf("%d messages, want %d", mx1.Count(), workers*calls)
	}
	// At most workers sessions are alive at once; one is ended and another
	// opened later only when more than maxIdlePerKey are idle at once.
	t.Logf("%d calls over %d connections", workers*calls, mx1.Connections())
	if mx1.Connections() > 2*workers {
		t.Errorf("%d connections, want at most %d", mx1.Connections(), 2*workers)
	}
	e.client.Close()
}
