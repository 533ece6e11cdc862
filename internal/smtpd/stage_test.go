package smtpd

import (
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"facteur/internal/maildir"
)

// gate is a Deliverer that holds every delivery until it is let go, and
// tells when one starts.
type gate struct {
	started chan int // the size of each message whose delivery started
	release chan struct{}
}

func (g *gate) Deliver(_ []string, header []byte, body io.Reader, _ maildir.Check) ([]string, error) {
	n, err := io.Copy(io.Discard, body)
	g.started <- len(header) + int(n)
	<-g.release
	return nil, err
}

// turnsEnv is a server with one turn, whose deliveries are held by g.
func turnsEnv(t *testing.T) (*env, *gate) {
	g := &gate{started: make(chan int, 3), release: make(chan struct{})}
	return newEnv(t, func(o *Options) { o.Maildir, o.Storing = g, 1 }), g
}

// data starts a transaction up to its DATA command, and returns the
// reply to it once it comes.
func data(t *testing.T, e *env) (*client, chan int) {
	c := dial(t, e.smtp)
	c.must("EHLO c", 250)
	c.must("MAIL FROM:<x@example.org>", 250)
	c.must("RCPT TO:<alice@example.test>", 250)
	c.write("DATA\r\n")
	replies := make(chan int, 2)
	go func() {
		for range 2 {
			c.conn.SetReadDeadline(time.Now().Add(20 * time.Second))
			line, err := c.r.ReadString('\n')
			if err != nil || len(line) < 3 {
				close(replies)
				return
			}
			code, _ := strconv.Atoi(line[:3])
			replies <- code
		}
	}()
	return c, replies
}

func within(t *testing.T, what string, d time.Duration, ch <-chan int) int {
	t.Helper()
	select {
	case v, ok := <-ch:
		if !ok {
			t.Fatalf("%s: connection closed", what)
		}
		return v
	case <-time.After(d):
		t.Fatalf("%s: nothing after %v", what, d)
	}
	return 0
}

func notWithin(t *testing.T, what string, d time.Duration, ch <-chan int) {
	t.Helper()
	select {
	case v := <-ch:
		t.Fatalf("%s: got %d", what, v)
	case <-time.After(d):
	}
}

const small = "Subject: hi\r\n\r\nhello\r\n.\r\n"

// A client gets its 354 once a turn is free: the messages being stored
// finish first.
func TestStoringTakesTurns(t *testing.T) {
	e, g := turnsEnv(t)
	a, aReplies := data(t, e)
	if code := within(t, "first 354", 10*time.Second, aReplies); code != 354 {
		t.Fatalf("DATA: %d", code)
	}
	a.write(small)
	within(t, "first delivery", 10*time.Second, g.started)
	_, bReplies := data(t, e)
	notWithin(t, "DATA while the only turn is taken", 300*time.Millisecond, bReplies)
	close(g.release)
	if code := within(t, "250", 10*time.Second, aReplies); code != 250 {
		t.Errorf("first message: %d", code)
	}
	if code := within(t, "second 354, once the turn is given back", 10*time.Second, bReplies); code != 354 {
		t.Errorf("second DATA: %d", code)
	}
}

// A client slower than stageGrace, or with a message too large to be read
// ahead, gives its turn to the others while it sends.
func TestStoringSlowOrLargeGiveTheirTurn(t *testing.T) {
	defer func(g time.Duration) { stageGrace = g }(stageGrace)
	stageGrace = 100 * time.Millisecond
	e, g := turnsEnv(t)

	slow, slowReplies := data(t, e)
	within(t, "slow client's 354", 10*time.Second, slowReplies)
	b, bReplies := data(t, e)
	within(t, "354 while the slow client sends nothing", 10*time.Second, bReplies)
	b.write(small)
	within(t, "delivery while the slow client sends nothing", 10*time.Second, g.started)

	large, largeReplies := data(t, e)
	notWithin(t, "DATA while the only turn is taken", 300*time.Millisecond, largeReplies)
	close(g.release)
	within(t, "250", 10*time.Second, bReplies)
	within(t, "large client's 354", 10*time.Second, largeReplies)
	g.release = make(chan struct{})
	large.write("Subject: big\r\n\r\n" + strings.Repeat(strings.Repeat("x", 998)+"\r\n", stageBytes/1000+1) + ".\r\n")
	within(t, "large delivery", 10*time.Second, g.started)
	c, cReplies := data(t, e)
	within(t, "354 while a large message streams", 10*time.Second, cReplies)
	c.write(small)
	within(t, "delivery while a large message streams", 10*time.Second, g.started)

	slow.write(small)
	close(g.release)
	within(t, "the slow client's delivery, under a turn taken again", 10*time.Second, g.started)
	for _, r := range []chan int{largeReplies, cReplies, slowReplies} {
		if code := within(t, "250", 10*time.Second, r); code != 250 {
			t.Errorf("reply %d, want 250", code)
		}
	}
}

// The staged reader gives back the stream as it was, and its error after
// the bytes before it.
func TestStage(t *testing.T) {
	long := strings.Repeat("0123456789", stageBytes/10+100)
	oops := errors.New("oops")
	for _, tc := range []struct {
		name  string
		r     io.Reader
		want  string
		whole bool
		err   error
	}{
		{"empty", strings.NewReader(""), "", true, nil},
		{"small", iotest.OneByteReader(strings.NewReader("hello")), "hello", true, nil},
		{"exactly the bound", strings.NewReader(long[:stageBytes]), long[:stageBytes], false, nil},
		{"long", iotest.HalfReader(strings.NewReader(long)), long, false, nil},
		{"error", io.MultiReader(strings.NewReader("abc"), iotest.ErrReader(oops)), "abc", false, oops},
		{"error with data", iotest.DataErrReader(io.MultiReader(strings.NewReader("abc"), iotest.ErrReader(oops))), "abc", false, oops},
	} {
		st := stage(tc.r)
		got, err := io.ReadAll(st.r)
		if string(got) != tc.want || st.whole != tc.whole || !errors.Is(err, tc.err) {
			t.Errorf("%s: read %d bytes, whole %v, err %v; want %d, %v, %v", tc.name, len(got), st.whole, err, len(tc.want), tc.whole, tc.err)
		}
		st.release()
	}
}

// A session taking a turn again after a slow sender goes before those
// waiting for their first.
func TestTurnsAgainGoFirst(t *testing.T) {
	ts := newTurns(1)
	held := ts.take(false)
	order := make(chan string, 2)
	waiters := func() int {
		ts.mu.Lock()
		defer ts.mu.Unlock()
		return ts.waiting.Len()
	}
	for i, name := range []string{"first time", "again"} {
		go func() {
			tk := ts.take(name == "again")
			order <- name
			tk.give()
		}()
		waitFor(t, func() bool { return waiters() == i+1 })
	}
	held.give()
	if got := []string{<-order, <-order}; got[0] != "again" {
		t.Errorf("turns handed to %v, want again first", got)
	}
	waitFor(t, func() bool { // every turn given back is free again
		ts.mu.Lock()
		defer ts.mu.Unlock()
		return ts.free == 1
	})
}
