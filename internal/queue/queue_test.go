package queue

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

func TestEnqueueDurableThenDelivered(t *testing.T) {
	dir := t.TempDir()
	tr := newFake()
	q := openQueue(t, testConfig(dir, tr))

	id := NewID()
	header := []byte("Received: from client.test\r\n")
	body := "Subject: hi\r\n\r\nBody with an 8-bit octet \xe9 and no final newline"
	err := q.Enqueue(Message{Origin: FromRelay, ID: id, From: "alice@sender.test", Rcpts: []string{"bob@dest.test", "BOB@dest.test", "carol@dest.test"}, EightBit: true},
		header, strings.NewReader(body), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := append(slices.Clone(header), body...)
	if f := files(t, dir); !slices.Equal(f, []string{id + msgExt}) {
		t.Errorf("spool holds %v after Enqueue, want the one message file", f)
	}
	head, got := readMsg(t, dir, id)
	if !bytes.Equal(got, want) {
		t.Fatalf("message bytes after the envelope line = %q, want %q", got, want)
	}
	if head.Size != 0 {
		t.Errorf("envelope line holds size %d, want none", head.Size)
	}
	env := readEnv(t, dir, id)
	if env.From != "alice@sender.test" || env.Size != int64(len(want)) || !env.EightBit || env.Attempts != 0 {
		t.Errorf("envelope = %+v", env)
	}
	if l := q.List(); len(l) != 1 || l[0].Size != int64(len(want)) {
		t.Errorf("List = %+v, want size %d", l, len(want))
	}
	if len(env.Rcpts) != 2 || env.Rcpts[0].Addr != "bob@dest.test" || env.Rcpts[1].Addr != "carol@dest.test" {
		t.Errorf("recipients = %+v, want bob and carol once each", env.Rcpts)
	}
	for _, r := range env.Rcpts {
		if r.State != Pending {
			t.Errorf("%s: state %s, want pending", r.Addr, r.State)
		}
	}
	if l := q.List(); len(l) != 1 || l[0].ID != id {
		t.Errorf("List = %+v", l)
	}

	run(t, q)
	waitFor(t, "the spool to empty", emptySpool(t, dir))
	calls := tr.callList()
	if len(calls) != 1 {
		t.Fatalf("%d calls, want 1: %+v", len(calls), calls)
	}
	c := calls[0]
	if c.domain != "dest.test" || !slices.Equal(c.ids, []string{id}) || c.froms[0] != "alice@sender.test" ||
		!slices.Equal(c.rcpts[0], []string{"bob@dest.test", "carol@dest.test"}) {
		t.Errorf("call = %+v", c)
	}
	if !bytes.Equal(c.data[0], want) {
		t.Errorf("transport read %q, want %q", c.data[0], want)
	}
	waitFor(t, "List to empty", func() bool { return len(q.List()) == 0 })
}

func TestEnqueueBodyErrorLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	q := openQueue(t, testConfig(dir, newFake()))
	boom := errors.New("client went away")
	body := io.MultiReader(strings.NewReader("Subject: x\r\n\r\nhalf a bo"), iotest.ErrReader(boom))
	err := q.Enqueue(Message{Origin: FromRelay, ID: NewID(), From: "a@b.test", Rcpts: []string{"c@d.test"}}, []byte("Received: x\r\n"), body, nil)
	if !errors.Is(err, boom) {
		t.Fatalf("Enqueue error = %v, want one wrapping %v", err, boom)
	}
	if f := files(t, dir); len(f) != 0 {
		t.Errorf("spool holds %v after a failed Enqueue", f)
	}
	if l := q.List(); len(l) != 0 {
		t.Errorf("List = %+v", l)
	}
}

func TestEnqueueRefusesBadInput(t *testing.T) {
	dir := t.TempDir()
	q := openQueue(t, testConfig(dir, newFake()))
	for _, m := range []Message{
		{Origin: FromRelay, ID: "not-an-id", From: "a@b.test", Rcpts: []string{"c@d.test"}},
		{Origin: FromRelay, ID: "../../etc/passwd", From: "a@b.test", Rcpts: []string{"c@d.test"}},
		{Origin: FromRelay, ID: NewID(), From: "a@b.test"},
		{ID: NewID(), From: "a@b.test", Rcpts: []string{"c@d.test"}},
		{Origin: "elsewhere", ID: NewID(), From: "a@b.test", Rcpts: []string{"c@d.test"}},
	} {
		if err := q.Enqueue(m, nil, strings.NewReader("x"), nil); err == nil {
			t.Errorf("Enqueue(%+v) accepted", m)
		}
	}
	if f := files(t, dir); len(f) != 0 {
		t.Errorf("spool holds %v", f)
	}
}

func TestEnqueueAlso(t *testing.T) {
	dir := t.TempDir()
	tr := newFake()
	q := openQueue(t, testConfig(dir, tr))

	var seen []byte
	id := NewID()
	err := q.Enqueue(Message{Origin: FromRelay, ID: id, From: "a@b.test", Rcpts: []string{"c@d.test"}}, []byte("H: 1\r\n"), strings.NewReader("\r\nbody\r\n"),
		func(stored io.Reader) error {
			var err error
			seen, err = io.ReadAll(stored)
			return err
		})
	if err != nil {
		t.Fatal(err)
	}
	if string(seen) != "H: 1\r\n\r\nbody\r\n" {
		t.Errorf("also read %q", seen)
	}

	local := errors.New("maildir full")
	id2 := NewID()
	err = q.Enqueue(Message{Origin: FromRelay, ID: id2, From: "a@b.test", Rcpts: []string{"c@d.test"}}, nil, strings.NewReader("x\r\n"),
		func(io.Reader) error { return local })
	if !errors.Is(err, local) {
		t.Fatalf("Enqueue error = %v, want %v", err, local)
	}
	if exists(filepath.Join(dir, id2+msgExt)) || exists(filepath.Join(dir, id2+envExt)) {
		t.Error("a message whose also failed stayed in the spool")
	}
	run(t, q)
	waitFor(t, "the spool to empty", emptySpool(t, dir))
	if d := tr.deliveries(); d[id2] != 0 || d[id] != 1 {
		t.Errorf("deliveries = %v", d)
	}
}

func TestTransientThenRetried(t *testing.T) {
	dir := t.TempDir()
	tr := newFake()
	tr.setRule(func(string, string) Result { return transient("mailbox busy, try later") })
	release := make(chan struct{})
	tr.setHold(func(n int, _ string) <-chan struct{} {
		if n >= 2 {
			return release // hold the retry while the test reads the spool
		}
		return nil
	})
	q := openQueue(t, testConfig(dir, tr))
	run(t, q)
	start := tr.clock.Now()
	id, data := enqueue(t, q, "alice@sender.test", "bob@dest.test")

	waitFor(t, "the first attempt to be recorded", func() bool {
		return exists(filepath.Join(dir, id+envExt)) && readEnv(t, dir, id).Attempts == 1
	})
	env := readEnv(t, dir, id)
	r := env.Rcpts[0]
	if env.Attempts != 1 || r.State != Pending || !strings.Contains(r.LastError, "mailbox busy, try later") ||
		r.Code != 451 || r.Host != "mx.test" {
		t.Errorf("envelope after a transient failure = %+v", env)
	}
	if !r.LastAttempt.Equal(start) || !env.NextAttempt.Equal(start.Add(time.Minute)) {
		t.Errorf("last attempt %v, next attempt %v: want %v and a minimum backoff after", r.LastAttempt, env.NextAttempt, start)
	}
	if head, _ := readMsg(t, dir, id); head.Attempts != 0 {
		t.Errorf("envelope line rewritten: %+v", head)
	}

	tr.clock.advance(q, 59*time.Second)
	tr.clock.advance(q, 0)
	if n := tr.started("dest.test"); n != 1 {
		t.Fatalf("%d attempts before the backoff is over, want 1", n)
	}
	tr.clock.advance(q, time.Second)
	waitFor(t, "the retry to start", func() bool { return tr.started("dest.test") == 2 })
	// The retry is under way: the spool already says when the one after
	// it is due, should the server die in the middle of it.
	att, err := openAttempts(dir)
	if err != nil {
		t.Fatal(err)
	}
	if at := time.Unix(0, att.found[id]); !at.Equal(start.Add(3 * time.Minute)) {
		t.Errorf("journal during the retry says %v, want the next attempt two minutes away", at)
	}
	if !exists(filepath.Join(dir, id+msgExt)) || !exists(filepath.Join(dir, id+envExt)) {
		t.Error("message or envelope file missing after a transient failure")
	}

	tr.setRule(nil)
	close(release)
	waitFor(t, "the spool to empty", emptySpool(t, dir))
	calls := tr.callList()
	if len(calls) != 2 {
		t.Fatalf("%d calls, want 2", len(calls))
	}
	if !bytes.Equal(calls[1].data[0], data) {
		t.Errorf("retry sent %q, want %q", calls[1].data[0], data)
	}
}

// bounceParts parses a bounce and returns its header, the human part and
// the delivery-status part.
func bounceParts(t *testing.T, data []byte) (mail.Header, string, string) {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("bounce does not parse: %v\n%s", err, data)
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/report" || params["report-type"] != "delivery-status" {
		t.Fatalf("bounce Content-Type %q (%v)", m.Header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	var human, status string
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("bounce part: %v", err)
		}
		b, err := io.ReadAll(p)
		if err != nil {
			t.Fatal(err)
		}
		ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		switch ct {
		case "text/plain":
			human = string(b)
		case "message/delivery-status":
			status = string(b)
		}
	}
	if human == "" || status == "" {
		t.Fatalf("bounce lacks a part:\n%s", data)
	}
	return m.Header, human, status
}

func TestPermanentFailureBounced(t *testing.T) {
	dir := t.TempDir()
	tr := newFake()
	tr.setRule(func(domain, rcpt string) Result {
		if rcpt == "nobody@dest.test" {
			return permanent("<nobody@dest.test>: no such user here")
		}
		return sent(domain, rcpt)
	})
	q := openQueue(t, testConfig(dir, tr))
	run(t, q)
	id, _ := enqueue(t, q, "alice@sender.test", "bob@dest.test", "nobody@dest.test")

	waitFor(t, "the spool to empty", emptySpool(t, dir))
	dest := tr.callsTo("dest.test")
	if len(dest) != 1 || !slices.Equal(dest[0].ids, []string{id}) ||
		!slices.Equal(dest[0].rcpts[0], []string{"bob@dest.test", "nobody@dest.test"}) {
		t.Fatalf("calls to dest.test = %+v", dest)
	}
	back := tr.callsTo("sender.test")
	if len(back) != 1 || len(back[0].ids) != 1 {
		t.Fatalf("calls to sender.test = %+v, want one bounce", back)
	}
	if back[0].froms[0] != "" || !slices.Equal(back[0].rcpts[0], []string{"alice@sender.test"}) {
		t.Errorf("bounce from %q to %v, want from <> to alice", back[0].froms[0], back[0].rcpts[0])
	}
	if !back[0].dkim[0] {
		t.Error("the bounce, written by facteur, is not to be DKIM-signed")
	}
	h, human, status := bounceParts(t, back[0].data[0])
	if !strings.Contains(h.Get("To"), "alice@sender.test") {
		t.Errorf("bounce To: %q", h.Get("To"))
	}
	if !strings.Contains(human, "no such user here") {
		t.Errorf("bounce text lacks the remote reply:\n%s", human)
	}
	for _, want := range []string{"Final-Recipient: rfc822; nobody@dest.test", "Status: 5.1.1", "Action: failed", "X-Queue-ID: " + id} {
		if !strings.Contains(status, want) {
			t.Errorf("delivery status lacks %q:\n%s", want, status)
		}
	}
	if strings.Contains(status, "bob@dest.test") {
		t.Errorf("delivery status names the recipient that was sent:\n%s", status)
	}
	if len(tr.callList()) != 2 {
		t.Errorf("calls = %+v", tr.callList())
	}
}

func TestLifetimeExpiryBouncedOnce(t *testing.T) {
	dir := t.TempDir()
	tr := newFake()
	tr.setRule(deferOnly("dest.test", "greylisted, come back later"))
	release := make(chan struct{})
	tr.setHold(func(n int, domain string) <-chan struct{} {
		if domain == "dest.test" && n == 1 {
			return release
		}
		return nil
	})
	cfg := testConfig(dir, tr)
	cfg.Lifetime = 30 * time.Second
	q := openQueue(t, cfg)
	run(t, q)
	id, _ := enqueue(t, q, "alice@sender.test", "bob@dest.test")
	// Past its lifetime by the end of its first attempt.
	waitFor(t, "the first attempt", func() bool { return tr.started("dest.test") == 1 })
	tr.clock.advance(q, time.Minute)
	close(release)

	waitFor(t, "the spool to empty", emptySpool(t, dir))
	if n := len(tr.callsTo("dest.test")); n != 1 {
		t.Errorf("%d calls to dest.test, want 1", n)
	}
	back := tr.callsTo("sender.test")
	if len(back) != 1 {
		t.Fatalf("%d bounces, want 1", len(back))
	}
	_, human, status := bounceParts(t, back[0].data[0])
	if !strings.Contains(status, "Status: 5.4.7") || !strings.Contains(status, "Final-Recipient: rfc822; bob@dest.test") {
		t.Errorf("delivery status:\n%s", status)
	}
	if !strings.Contains(human, "greylisted, come back later") {
		t.Errorf("bounce text lacks the last error:\n%s", human)
	}
	if strings.Contains(status, "Status: 4.") {
		t.Errorf("a failed recipient reported with a 4.x.x status:\n%s", status)
	}
	_ = id
}

func TestDelayWarningOnce(t *testing.T) {
	dir := t.TempDir()
	tr := newFake()
	tr.setRule(deferOnly("dest.test", "greylisted, come back later"))
	cfg := testConfig(dir, tr)
	cfg.DelayWarning = 90 * time.Second // late at the first retry
	q := openQueue(t, cfg)
	run(t, q)
	arrival := tr.clock.Now()
	id, _ := enqueue(t, q, "alice@sender.test", "bob@dest.test")
	enqueue(t, q, "", "postmaster@dest.test") // a bounce is never warned about

	// The bounce's attempts count among those at dest.test too, so the
	// warning is waited for in the envelope, not inferred from a count.
	waitFor(t, "the first attempts", func() bool { return readEnv(t, dir, id).Attempts == 1 })
	if readEnv(t, dir, id).Warned {
		t.Fatal("warned before the delay")
	}
	for n := 2; n <= 4; n++ {
		tr.clock.advance(q, cfg.MaxBackoff)
		waitFor(t, "another attempt", func() bool { return readEnv(t, dir, id).Attempts == n })
	}
	if !readEnv(t, dir, id).Warned {
		t.Fatal("no warning recorded")
	}
	tr.setRule(nil)
	tr.clock.advance(q, cfg.MaxBackoff)
	waitFor(t, "the spool to empty", emptySpool(t, dir))
	back := tr.callsTo("sender.test")
	if len(back) != 1 {
		t.Fatalf("%d notices to the sender, want one warning", len(back))
	}
	h, human, status := bounceParts(t, back[0].data[0])
	if h.Get("Subject") != "Delayed Mail (still being retried)" || !strings.Contains(human, "greylisted, come back later") {
		t.Errorf("warning subject %q, text:\n%s", h.Get("Subject"), human)
	}
	until := "Will-Retry-Until: " + arrival.Add(cfg.Lifetime).Format(time.RFC1123Z)
	for _, want := range []string{"Final-Recipient: rfc822; bob@dest.test", "Action: delayed", "Status: 4.3.0", until, "X-Queue-ID: " + id} {
		if !strings.Contains(status, want) {
			t.Errorf("delivery status lacks %q:\n%s", want, status)
		}
	}
}

// TestOriginDecidesSigning: the origin is kept in the envelope, and mail
// that came in from another domain's server is never handed over for
// signing; an envelope from before origins were kept is. A TLS report is
// signed, and handed over as one.
func TestOriginDecidesSigning(t *testing.T) {
	dir := t.TempDir()
	legacy := &Envelope{ID: NewID(), From: "a@sender.test", Arrival: time.Now(), Rcpts: []Rcpt{{Addr: "old@dest.test", State: Pending}}}
	writeMsg(t, dir, legacy, "From: a@sender.test\r\n\r\nold\r\n")
	tr := newFake()
	q := openQueue(t, testConfig(dir, tr))
	ids := map[Origin]string{"": legacy.ID}
	for _, o := range []Origin{FromMX, FromSubmission, FromTLSReport} {
		ids[o] = NewID()
		if err := q.Enqueue(Message{Origin: o, ID: ids[o], From: "a@sender.test", Rcpts: []string{string(o) + "@dest.test"}}, nil,
			strings.NewReader("From: a@sender.test\r\n\r\nx\r\n"), nil); err != nil {
			t.Fatal(err)
		}
		if env := readEnv(t, dir, ids[o]); env.Origin != o {
			t.Errorf("origin on disk %q, want %q", env.Origin, o)
		}
	}
	run(t, q)
	waitFor(t, "four deliveries", func() bool { return len(tr.deliveries()) == 4 })
	for _, c := range tr.callList() {
		for i, id := range c.ids {
			if want := id != ids[FromMX]; c.dkim[i] != want {
				t.Errorf("message to %s: DKIM %t, want %t", c.rcpts[i], c.dkim[i], want)
			}
			if want := id == ids[FromTLSReport]; c.report[i] != want {
				t.Errorf("message to %s: TLSReport %t, want %t", c.rcpts[i], c.report[i], want)
			}
		}
	}
}

func TestBounceNeverBounced(t *testing.T) {
	dir := t.TempDir()
	tr := newFake()
	tr.setRule(func(string, string) Result { return permanent("no such user") })
	q := openQueue(t, testConfig(dir, tr))
	run(t, q)
	id, _ := enqueue(t, q, "", "postmaster@dest.test")
	waitFor(t, "the spool to empty", emptySpool(t, dir))
	waitFor(t, "List to empty", func() bool { return len(q.List()) == 0 })
	calls := tr.callList()
	if len(calls) != 1 || calls[0].domain != "dest.test" || calls[0].ids[0] != id {
		t.Errorf("calls = %+v, want only the bounce's own attempt", calls)
	}
}

func TestRestartDeliversEachOnce(t *testing.T) {
	dir := t.TempDir()
	failing := newFake()
	failing.setRule(func(string, string) Result { return transient("try later") })
	q := openQueue(t, testConfig(dir, failing))
	stop := run(t, q)
	want := map[string][]byte{}
	for i := 0; i < 5; i++ {
		id, data := enqueue(t, q, "alice@sender.test", "bob@dest.test", "carol@other.test")
		want[id] = data
	}
	waitFor(t, "an attempt of each message", func() bool {
		for _, env := range q.List() {
			if env.Attempts == 0 {
				return false
			}
		}
		return true
	})
	stop()

	working := newFake()
	q2 := openQueue(t, testConfig(dir, working))
	working.clock.advance(q2, time.Minute)
	l := q2.List()
	if len(l) != len(want) {
		t.Fatalf("List after restart has %d messages, want %d", len(l), len(want))
	}
	for _, env := range l {
		if want[env.ID] == nil || env.Attempts == 0 {
			t.Errorf("after restart: %+v", env)
		}
	}
	run(t, q2)
	waitFor(t, "the spool to empty", emptySpool(t, dir))
	waitFor(t, "List to empty", func() bool { return len(q2.List()) == 0 })
	for _, domain := range []string{"dest.test", "other.test"} {
		got := map[string]int{}
		for _, c := range working.callsTo(domain) {
			for i, id := range c.ids {
				got[id]++
				if !bytes.Equal(c.data[i], want[id]) {
					t.Errorf("%s after restart: sent %q, want %q", id, c.data[i], want[id])
				}
			}
		}
		for id := range want {
			if got[id] != 1 {
				t.Errorf("%s delivered %d times to %s, want once", id, got[id], domain)
			}
		}
	}
}

func TestStartupCleaning(t *testing.T) {
	dir := t.TempDir()
	q := openQueue(t, testConfig(dir, newFake()))
	good, data := enqueue(t, q, "alice@sender.test", "bob@dest.test")
	badEnv, badEnvData := enqueue(t, q, "alice@sender.test", "carol@dest.test")

	leftover, badLine, lone := NewID(), NewID(), NewID()
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	loneEnv := string(mustMarshal(t, &Envelope{ID: lone, Arrival: time.Now(), Rcpts: []Rcpt{{Addr: "x@y.test", State: Pending}}}))
	write(".tmp-xyz", "half written")
	write(leftover+msgExt, "Received: never acknowledged by a version without envelope lines\r\n")
	write(badLine+msgExt, `{"id": "`+badLine+`", "rcpts": [`+"\nSubject: x\r\n\r\n")
	write(badLine+envExt, strings.ReplaceAll(loneEnv, lone, badLine))
	write(badEnv+envExt, `{"id": "`+badEnv+`", "rcpts": [`)
	write(lone+envExt, loneEnv) // its message removed just before a crash
	write("hello.txt", "hello")

	tr := newFake()
	q2 := openQueue(t, testConfig(dir, tr))
	tr.clock.advance(q2, time.Minute) // the restart waits out the first attempt (see Enqueue)
	// Before loading, List shows what the files say: the message whose
	// line is bad shows as its envelope file says, until start-up judges it.
	var listed []string
	for _, e := range q2.List() {
		listed = append(listed, e.ID)
	}
	if slices.Sort(listed); !slices.Equal(listed, slices.Sorted(slices.Values([]string{good, badEnv, badLine}))) {
		t.Errorf("List after Open = %v, want %s, %s and %s", listed, good, badEnv, badLine)
	}
	loadAll(q2)
	if exists(filepath.Join(dir, ".tmp-xyz")) || !exists(filepath.Join(dir, "corrupt", "hello.txt")) {
		t.Error("start-up left a temporary file, or a foreign one in place")
	}
	if l := q2.List(); len(l) != 2 || !slices.Contains([]string{l[0].ID + l[1].ID, l[1].ID + l[0].ID}, good+badEnv) {
		t.Errorf("List after loading = %+v, want %s and %s (same arrival: either order)", l, good, badEnv)
	}
	for _, gone := range []string{".tmp-xyz", leftover + msgExt, badLine + msgExt, badLine + envExt, badEnv + envExt, lone + envExt, "hello.txt"} {
		if exists(filepath.Join(dir, gone)) {
			t.Errorf("%s still in the spool", gone)
		}
	}
	for _, aside := range []string{badLine + msgExt, badLine + envExt, badEnv + envExt, "hello.txt"} {
		if !exists(filepath.Join(dir, "corrupt", aside)) {
			t.Errorf("%s not moved to corrupt/", aside)
		}
	}
	for _, name := range []string{leftover + msgExt, ".tmp-xyz", lone + envExt} {
		if exists(filepath.Join(dir, "corrupt", name)) {
			t.Errorf("%s, a leftover of a crash, was kept in corrupt/", name)
		}
	}

	run(t, q2)
	waitFor(t, "the spool to empty", emptySpool(t, dir))
	// The message whose envelope file was unreadable is delivered from its
	// own envelope line rather than never.
	sent := map[string][]byte{}
	for _, c := range tr.callList() {
		for i, id := range c.ids {
			sent[id] = c.data[i]
		}
	}
	if len(sent) != 2 || !bytes.Equal(sent[good], data) || !bytes.Equal(sent[badEnv], badEnvData) {
		t.Errorf("calls = %+v", tr.callList())
	}
	// A second start finds corrupt/ and leaves it alone.
	openQueue(t, testConfig(dir, tr))
	if !exists(filepath.Join(dir, "corrupt", "hello.txt")) {
		t.Error("corrupt/ emptied by a second Open")
	}
}

// The envelope file, written after an attempt that left work to do,
// supersedes the message file's line across a restart; a crash between the
// removal of the envelope file and the message file's has the message
// delivered again from its line (at-least-once), never lost.
func TestEnvelopeFileSupersedesLine(t *testing.T) {
	dir := t.TempDir()
	failing := newFake()
	failing.setRule(deferOnly("b.test", "later"))
	q := openQueue(t, testConfig(dir, failing))
	stop := run(t, q)
	id, data := enqueue(t, q, "alice@sender.test", "x@a.test", "y@b.test")
	waitFor(t, "the first attempt to be recorded", func() bool {
		return exists(filepath.Join(dir, id+envExt)) && readEnv(t, dir, id).Attempts == 1
	})
	stop()
	if env := readEnv(t, dir, id); env.Rcpts[0].State != Sent || env.Rcpts[1].State != Pending || env.Size != int64(len(data)) {
		t.Fatalf("envelope after the attempt = %+v", env)
	}

	working := newFake()
	q2 := openQueue(t, testConfig(dir, working))
	if l := q2.List(); len(l) != 1 || l[0].Attempts != 1 || l[0].Size != int64(len(data)) {
		t.Fatalf("List after restart = %+v", l)
	}
	working.clock.advance(q2, time.Minute)
	run(t, q2)
	waitFor(t, "the spool to empty", emptySpool(t, dir))
	if c := working.callList(); len(c) != 1 || c[0].domain != "b.test" || !bytes.Equal(c[0].data[0], data) {
		t.Errorf("calls after restart = %+v, want b.test only", c)
	}

	// As if the envelope file's removal reached the disk and not the
	// message file's: the message goes again to every recipient.
	id2 := NewID()
	writeMsg(t, dir, &Envelope{ID: id2, From: "alice@sender.test", Arrival: time.Now(),
		Rcpts: []Rcpt{{Addr: "x@a.test", State: Pending}}}, "Subject: again\r\n\r\n")
	again := newFake()
	run(t, openQueue(t, testConfig(dir, again)))
	waitFor(t, "the spool to empty", emptySpool(t, dir))
	if c := again.callList(); len(c) != 1 || c[0].ids[0] != id2 || string(c[0].data[0]) != "Subject: again\r\n\r\n" {
		t.Errorf("calls = %+v", c)
	}
}

// A spool written before message files had an envelope line (<id>.msg the
// bare message beside <id>.env) is still delivered after an upgrade.
func TestOldLayoutStillRead(t *testing.T) {
	dir := t.TempDir()
	id, leftover := NewID(), NewID()
	data := "Received: from client.test\r\nSubject: old\r\n\r\nbody\r\n"
	env := &Envelope{ID: id, From: "alice@sender.test", Arrival: time.Now(), Size: int64(len(data)), Attempts: 2,
		Rcpts: []Rcpt{{Addr: "bob@dest.test", State: Pending}, {Addr: "carol@dest.test", State: Sent}}}
	for name, content := range map[string]string{
		id + msgExt:       data,
		id + envExt:       string(mustMarshal(t, env)),
		leftover + msgExt: data, // no envelope: a crash before the 250
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if l, err := ListDir(dir); err != nil || len(l) != 1 || l[0].ID != id || l[0].Size != int64(len(data)) || l[0].Attempts != 2 {
		t.Fatalf("ListDir = %+v, %v", l, err)
	}
	tr := newFake()
	q := openQueue(t, testConfig(dir, tr))
	loadAll(q)
	if exists(filepath.Join(dir, leftover+msgExt)) || exists(filepath.Join(dir, "corrupt")) {
		t.Error("leftover of the old layout not removed")
	}
	run(t, q)
	waitFor(t, "the spool to empty", emptySpool(t, dir))
	if c := tr.callList(); len(c) != 1 || !slices.Equal(c[0].rcpts[0], []string{"bob@dest.test"}) || string(c[0].data[0]) != data {
		t.Errorf("calls = %+v", c)
	}
}

func TestFlushDir(t *testing.T) {
	dir := t.TempDir()
	tr := newFake()
	tr.setRule(func(string, string) Result { return transient("later") })
	cfg := testConfig(dir, tr)
	cfg.MinBackoff, cfg.MaxBackoff = time.Hour, 2*time.Hour
	q := openQueue(t, cfg)
	stop := run(t, q)
	deferred, _ := enqueue(t, q, "alice@sender.test", "bob@dest.test")
	waitFor(t, "the first attempt to be recorded", func() bool {
		return exists(filepath.Join(dir, deferred+envExt)) && readEnv(t, dir, deferred).Attempts == 1
	})
	stop()
	// Stored as on its first attempt, which a restart does not repeat at
	// once (TestCrashMidAttemptWaits); FlushDir makes it due.
	fresh, _ := enqueue(t, q, "alice@sender.test", "carol@dest.test")
	if env := readEnv(t, dir, fresh); !env.NextAttempt.After(tr.clock.Now()) {
		t.Fatalf("a new message is stored due at once: %+v", env)
	}

	n, err := FlushDir(dir)
	if err != nil || n != 2 {
		t.Fatalf("FlushDir = %d, %v; want 2", n, err)
	}
	l, err := ListDir(dir)
	if err != nil || len(l) != 2 {
		t.Fatalf("ListDir = %+v, %v", l, err)
	}
	for _, env := range l {
		if env.NextAttempt.After(time.Now()) {
			t.Errorf("%s due at %v after FlushDir", env.ID, env.NextAttempt)
		}
	}
	if env := readEnv(t, dir, deferred); env.Attempts != 1 {
		t.Errorf("FlushDir lost the attempt count: %+v", env)
	}
}

// An envelope too long for start-up to read back is refused at once.
func TestEnqueueEnvelopeTooLarge(t *testing.T) {
	dir := t.TempDir()
	q := openQueue(t, testConfig(dir, newFake()))
	var rcpts []string
	for i := 0; len(rcpts)*300 < maxHead; i++ {
		rcpts = append(rcpts, fmt.Sprintf("%s%d@dest.test", strings.Repeat("r", 280), i))
	}
	if err := q.Enqueue(Message{Origin: FromRelay, ID: NewID(), From: "a@b.test", Rcpts: rcpts}, nil, strings.NewReader("x\r\n"), nil); err == nil {
		t.Error("Enqueue accepted an envelope over maxHead")
	}
	if f := files(t, dir); len(f) != 0 {
		t.Errorf("spool holds %v", f)
	}
}

func mustMarshal(t testing.TB, env *Envelope) []byte {
	t.Helper()
	b, err := env.marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPerDomainLimitAndBatching(t *testing.T) {
	dir := t.TempDir()
	tr := newFake()
	release := make(chan struct{})
	tr.setHold(func(_ int, domain string) <-chan struct{} {
		if domain == "slow.test" {
			return release
		}
		return nil
	})
	cfg := testConfig(dir, tr)
	cfg.PerDomain = 1
	q := openQueue(t, cfg)
	run(t, q)

	var ids []string
	id, _ := enqueue(t, q, "alice@sender.test", "r0@slow.test")
	ids = append(ids, id)
	waitFor(t, "the first call to slow.test", func() bool {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		return tr.act["slow.test"] == 1
	})
	for i := 1; i < 10; i++ {
		id, _ := enqueue(t, q, "alice@sender.test", "r"+string(rune('0'+i))+"@slow.test")
		ids = append(ids, id)
	}
	fast, _ := enqueue(t, q, "alice@sender.test", "x@fast.test")
	waitFor(t, "fast.test to be served while slow.test is held", func() bool {
		return !exists(filepath.Join(dir, fast+msgExt))
	})
	for _, id := range ids {
		if !exists(filepath.Join(dir, id+msgExt)) {
			t.Fatalf("%s left the spool while its domain was held", id)
		}
	}
	close(release)
	waitFor(t, "the spool to empty", emptySpool(t, dir))

	tr.mu.Lock()
	maxSlow := tr.maxAt["slow.test"]
	tr.mu.Unlock()
	if maxSlow != 1 {
		t.Errorf("%d calls at once to slow.test, want at most 1", maxSlow)
	}
	slow := tr.callsTo("slow.test")
	batched := false
	for _, c := range slow {
		batched = batched || len(c.ids) > 1
	}
	if !batched || len(slow) >= 10 {
		t.Errorf("%d calls to slow.test, none carrying several messages", len(slow))
	}
	d := tr.deliveries()
	for _, id := range ids {
		if d[id] != 1 {
			t.Errorf("%s delivered %d times", id, d[id])
		}
	}
}

func TestTwoDomainsInOneMessage(t *testing.T) {
	dir := t.TempDir()
	tr := newFake()
	release := make(chan struct{})
	tr.setHold(func(_ int, domain string) <-chan struct{} {
		if domain == "b.test" {
			return release
		}
		return nil
	})
	q := openQueue(t, testConfig(dir, tr))
	run(t, q)
	id, data := enqueue(t, q, "alice@sender.test", "x@a.test", "y@B.test", "z@a.test")
	waitFor(t, "the call to a.test", func() bool { return len(tr.callsTo("a.test")) == 1 })
	if !exists(filepath.Join(dir, id+msgExt)) {
		t.Fatal("message left the spool before all its domains were done")
	}
	close(release)
	waitFor(t, "the spool to empty", emptySpool(t, dir))
	a, b := tr.callsTo("a.test"), tr.callsTo("b.test")
	if len(a) != 1 || len(b) != 1 {
		t.Fatalf("calls: a.test %d, b.test %d, want one each", len(a), len(b))
	}
	if !slices.Equal(a[0].rcpts[0], []string{"x@a.test", "z@a.test"}) || !slices.Equal(b[0].rcpts[0], []string{"y@B.test"}) {
		t.Errorf("recipients: a.test %v, b.test %v", a[0].rcpts, b[0].rcpts)
	}
	if !bytes.Equal(a[0].data[0], data) || !bytes.Equal(b[0].data[0], data) {
		t.Error("a domain got other bytes than enqueued")
	}
}

// A recipient already sent is not tried again when another domain retries.
func TestOnlyPendingRetried(t *testing.T) {
	dir := t.TempDir()
	tr := newFake()
	tr.setRule(deferOnly("b.test", "later"))
	q := openQueue(t, testConfig(dir, tr))
	run(t, q)
	id, _ := enqueue(t, q, "alice@sender.test", "x@a.test", "y@b.test")
	waitFor(t, "the first attempt", func() bool { return readEnv(t, dir, id).Attempts == 1 })
	tr.clock.advance(q, time.Minute)
	waitFor(t, "the second attempt", func() bool { return readEnv(t, dir, id).Attempts == 2 })
	tr.setRule(nil)
	tr.clock.advance(q, 2*time.Minute)
	waitFor(t, "the spool to empty", emptySpool(t, dir))
	if n := len(tr.callsTo("a.test")); n != 1 {
		t.Errorf("a.test called %d times, want once", n)
	}
	_ = id
}

func TestFlush(t *testing.T) {
	dir := t.TempDir()
	tr := newFake()
	tr.setRule(func(string, string) Result { return transient("later") })
	cfg := testConfig(dir, tr)
	cfg.MinBackoff, cfg.MaxBackoff = time.Hour, 2*time.Hour
	q := openQueue(t, cfg)
	run(t, q)
	id, _ := enqueue(t, q, "alice@sender.test", "bob@dest.test")
	waitFor(t, "the first attempt to be recorded", func() bool {
		b, err := os.ReadFile(filepath.Join(dir, id+envExt))
		env, perr := parseEnvelope(b, id)
		return err == nil && perr == nil && env.Attempts == 1
	})
	if env := readEnv(t, dir, id); !env.NextAttempt.Equal(tr.clock.Now().Add(time.Hour)) {
		t.Errorf("next attempt %v, want about an hour away", env.NextAttempt)
	}
	tr.setRule(nil)
	// The entry goes back to the waiting heap just after its envelope is
	// written: flush until it is there.
	waitFor(t, "Flush to find the message", func() bool { return q.Flush() == 1 })
	waitFor(t, "the spool to empty", emptySpool(t, dir))
	if n := tr.deliveries()[id]; n != 2 {
		t.Errorf("%d attempts, want 2", n)
	}
}

func TestRemove(t *testing.T) {
	dir := t.TempDir()
	tr := newFake()
	q := openQueue(t, testConfig(dir, tr))
	keep, _ := enqueue(t, q, "alice@sender.test", "bob@dest.test")
	gone, _ := enqueue(t, q, "alice@sender.test", "carol@dest.test")
	if err := q.Remove(gone); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if exists(filepath.Join(dir, gone+msgExt)) || exists(filepath.Join(dir, gone+envExt)) {
		t.Error("removed message still on disk")
	}
	if l := q.List(); len(l) != 1 || l[0].ID != keep {
		t.Errorf("List = %+v, want only %s", l, keep)
	}
	if err := q.Remove(gone); !errors.Is(err, ErrUnknown) {
		t.Errorf("second Remove = %v, want ErrUnknown", err)
	}
	if err := q.Remove(NewID()); !errors.Is(err, ErrUnknown) {
		t.Errorf("Remove of an unknown id = %v, want ErrUnknown", err)
	}
	if err := q.Remove("../x"); !errors.Is(err, ErrUnknown) {
		t.Errorf("Remove of a bad id = %v, want ErrUnknown", err)
	}
	run(t, q)
	waitFor(t, "the spool to empty", emptySpool(t, dir))
	if d := tr.deliveries(); d[gone] != 0 || d[keep] != 1 {
		t.Errorf("deliveries = %v", d)
	}
}

func TestRemoveDuringDelivery(t *testing.T) {
	dir := t.TempDir()
	tr := newFake()
	release := make(chan struct{})
	tr.setHold(func(int, string) <-chan struct{} { return release })
	q := openQueue(t, testConfig(dir, tr))
	run(t, q)
	id, _ := enqueue(t, q, "alice@sender.test", "bob@dest.test")
	waitFor(t, "the delivery to start", func() bool {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		return tr.total == 1
	})
	if err := q.Remove(id); err == nil || errors.Is(err, ErrUnknown) {
		t.Errorf("Remove during delivery = %v, want a try-again error", err)
	}
	close(release)
	waitFor(t, "the spool to empty", emptySpool(t, dir))
}

func TestListDirRemoveDir(t *testing.T) {
	dir := t.TempDir()
	q := openQueue(t, testConfig(dir, newFake()))
	a, _ := enqueue(t, q, "alice@sender.test", "bob@dest.test")
	b, _ := enqueue(t, q, "", "carol@dest.test")
	if err := os.WriteFile(filepath.Join(dir, "hello.txt"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}

	l, err := ListDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(l) != 2 || l[0].ID != a || l[1].ID != b || l[1].From != "" {
		t.Fatalf("ListDir = %+v", l)
	}
	if err := RemoveDir(dir, a); err != nil {
		t.Fatalf("RemoveDir: %v", err)
	}
	if exists(filepath.Join(dir, a+msgExt)) || exists(filepath.Join(dir, a+envExt)) {
		t.Error("RemoveDir left files")
	}
	if err := RemoveDir(dir, a); !errors.Is(err, ErrUnknown) {
		t.Errorf("RemoveDir twice = %v, want ErrUnknown", err)
	}
	if err := RemoveDir(dir, "../../x"); err == nil {
		t.Error("RemoveDir accepted a path")
	}
	if l, err := ListDir(dir); err != nil || len(l) != 1 || l[0].ID != b {
		t.Errorf("ListDir after RemoveDir = %+v, %v", l, err)
	}
	if !exists(filepath.Join(dir, "hello.txt")) {
		t.Error("ListDir or RemoveDir touched a foreign file")
	}
	if _, err := ListDir(filepath.Join(dir, "missing")); err == nil {
		t.Error("ListDir of a missing directory: no error")
	}
}

func TestBackoff(t *testing.T) {
	q := &Queue{cfg: Config{MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond}}
	d := &Queue{cfg: Config{MinBackoff: 5 * time.Minute, MaxBackoff: time.Hour}}
	for _, tc := range []struct {
		q        *Queue
		attempts int
		want     time.Duration
	}{
		{q, 0, 50 * time.Millisecond},
		{q, 1, 50 * time.Millisecond},
		{q, 2, 100 * time.Millisecond},
		{q, 3, 200 * time.Millisecond},
		{q, 4, 200 * time.Millisecond},
		{q, 1000, 200 * time.Millisecond},
		{d, 1, 5 * time.Minute},
		{d, 2, 10 * time.Minute},
		{d, 3, 20 * time.Minute},
		{d, 4, 40 * time.Minute},
		{d, 5, time.Hour},
		{d, 6, time.Hour},
		{d, 1 << 30, time.Hour},
	} {
		if got := tc.q.backoff(tc.attempts); got != tc.want {
			t.Errorf("backoff(%d) with %v..%v = %v, want %v", tc.attempts, tc.q.cfg.MinBackoff, tc.q.cfg.MaxBackoff, got, tc.want)
		}
	}
}

// An id already in the spool is refused, never replaces the message.
func TestEnqueueDuplicateID(t *testing.T) {
	dir := t.TempDir()
	tr := newFake()
	q := openQueue(t, testConfig(dir, tr))
	id, data := enqueue(t, q, "alice@sender.test", "bob@dest.test")
	err := q.Enqueue(Message{Origin: FromRelay, ID: id, From: "mallory@sender.test", Rcpts: []string{"eve@dest.test"}}, nil, strings.NewReader("other\r\n"), nil)
	if !errors.Is(err, os.ErrExist) {
		t.Errorf("Enqueue of a queued id = %v, want an error wrapping ErrExist", err)
	}
	if env, got := readMsg(t, dir, id); !bytes.Equal(got, data) || env.From != "alice@sender.test" {
		t.Errorf("message file now from %s: %q, want %q", env.From, got, data)
	}
	if f := files(t, dir); len(f) != 1 {
		t.Errorf("spool holds %v", f)
	}
	run(t, q)
	waitFor(t, "the spool to empty", emptySpool(t, dir))
	if c := tr.callList(); len(c) != 1 || !bytes.Equal(c[0].data[0], data) {
		t.Errorf("calls = %+v", c)
	}
}

// An envelope with nothing left to do (all recipients sent or failed) is
// finished off after a restart, without a delivery or a bounce.
func TestNothingPendingRemoved(t *testing.T) {
	dir := t.TempDir()
	id := NewID()
	env := &Envelope{ID: id, From: "alice@sender.test", Arrival: time.Now(), Rcpts: []Rcpt{
		{Addr: "bob@dest.test", State: Pending}, {Addr: "carol@dest.test", State: Pending}}}
	writeMsg(t, dir, env, "x\r\n")
	env.Rcpts = []Rcpt{{Addr: "bob@dest.test", State: Sent}, {Addr: "carol@dest.test", State: Failed}}
	env.Attempts = 1
	if err := os.WriteFile(filepath.Join(dir, id+envExt), mustMarshal(t, env), 0o600); err != nil {
		t.Fatal(err)
	}
	tr := newFake()
	q := openQueue(t, testConfig(dir, tr))
	run(t, q)
	waitFor(t, "the spool to empty", emptySpool(t, dir))
	waitFor(t, "List to empty", func() bool { return len(q.List()) == 0 })
	if c := tr.callList(); len(c) != 0 {
		t.Errorf("calls = %+v", c)
	}
}

// TestCrashMidAttemptWaits: the spool says when to try next before an
// attempt starts, so a server that dies in the middle of one, first or
// retry, does not try again at once when it comes back.
func TestCrashMidAttemptWaits(t *testing.T) {
	dir := t.TempDir()
	tr := newFake()
	tr.setRule(func(string, string) Result { return transient("later") })
	held := make(chan struct{})
	tr.setHold(func(int, string) <-chan struct{} { return held })
	q := openQueue(t, testConfig(dir, tr))
	run(t, q)
	start := tr.clock.Now()
	id, _ := enqueue(t, q, "alice@sender.test", "bob@dest.test")

	// crash brings a copy of the spool as it is now up on a new server at
	// the same time, and says when that server tries the message.
	crash := func() time.Time {
		t.Helper()
		copied := copySpool(t, dir)
		q2 := openQueue(t, testConfig(copied, newFake()))
		l := q2.List()
		if len(l) != 1 {
			t.Fatalf("%d messages after the crash, want 1", len(l))
		}
		return l[0].NextAttempt
	}

	waitFor(t, "the first attempt", func() bool { return tr.started("dest.test") == 1 })
	if at := crash(); !at.Equal(start.Add(time.Minute)) {
		t.Errorf("a crash in the first attempt has it tried again at %v, want a minimum backoff after %v", at, start)
	}
	held <- struct{}{}
	waitFor(t, "the first attempt to be recorded", func() bool {
		return exists(filepath.Join(dir, id+envExt)) && readEnv(t, dir, id).Attempts == 1
	})
	tr.clock.advance(q, time.Minute)
	waitFor(t, "the retry", func() bool { return tr.started("dest.test") == 2 })
	if at := crash(); !at.Equal(start.Add(3 * time.Minute)) {
		t.Errorf("a crash in the retry has it tried again at %v, want two minutes after it began", at)
	}
	close(held)
}

// TestCleanStopDoesNotWait: after a clean stop no attempt was under way,
// so a message never tried is due at once when the server starts again;
// without the mark Run leaves, as after a crash, it waits (see
// TestCrashMidAttemptWaits). The mark is taken at start.
func TestCleanStopDoesNotWait(t *testing.T) {
	dir := t.TempDir()
	q := openQueue(t, testConfig(dir, newFake()))
	stop := run(t, q)
	stop()
	if !exists(filepath.Join(dir, cleanName)) {
		t.Fatal("Run left no mark of its clean stop")
	}
	enqueue(t, q, "alice@sender.test", "bob@dest.test") // taken while the scheduler is stopped

	q2 := openQueue(t, testConfig(dir, newFake()))
	if exists(filepath.Join(dir, cleanName)) {
		t.Error("Open left the mark for the next start")
	}
	if env := q2.List()[0]; !env.NextAttempt.Equal(env.Arrival) {
		t.Errorf("after a clean stop the new message is listed due at %v, want at once (%v)", env.NextAttempt, env.Arrival)
	}
	loadAll(q2)
	if at, arrival := q2.waiting[0].next, q2.waiting[0].arrival; at != arrival {
		t.Errorf("after a clean stop the new message is due at %v, want at once (%v)", time.Unix(0, at), time.Unix(0, arrival))
	}
	q3 := openQueue(t, testConfig(dir, newFake())) // as after a crash: no mark
	if env := q3.List()[0]; !env.NextAttempt.Equal(env.Arrival.Add(time.Minute)) {
		t.Errorf("without the mark the new message is due at %v, want a minimum backoff after its arrival", env.NextAttempt)
	}
}
