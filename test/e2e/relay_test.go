package e2e

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"facteur/internal/smtptest"
)

// relayWorld is facteur with its outbound side pointed at a fake DNS server
// and at fake MX servers on 127.0.0.2 and 127.0.0.3, all on loopback.
type relayWorld struct {
	*instance
	dns  *smtptest.DNSServer
	port int // the outbound port, the same on every fake MX
}

func newRelayWorld(t *testing.T, outbound string) *relayWorld {
	t.Helper()
	dns := smtptest.NewDNS(t)
	port := smtptest.FreePortOn(t, "127.0.0.2", "127.0.0.3", "::1")
	// Retries within seconds, unless the test chooses its own backoff.
	if !strings.Contains(outbound, "min_backoff") {
		outbound += "min_backoff = \"1s\"\nmax_backoff = \"2s\"\n"
	}
	in := setup(t, fmt.Sprintf("dns = %q\n[outbound]\nport = %d\nconnect_timeout = \"2s\"\n%s", dns.Addr(), port, outbound))
	return &relayWorld{instance: in, dns: dns, port: port}
}

// twoMX publishes remote.test with mx1 (127.0.0.2) preferred over mx2 (127.0.0.3).
func (w *relayWorld) twoMX() {
	w.dns.MX("remote.test", 10, "mx1.remote.test")
	w.dns.MX("remote.test", 20, "mx2.remote.test")
	w.dns.A("mx1.remote.test", "127.0.0.2")
	w.dns.A("mx2.remote.test", "127.0.0.3")
}

func (w *relayWorld) mx(ip string, opts smtptest.MXOptions) *smtptest.MX {
	return smtptest.NewMX(w.t, ip, w.port, opts)
}

// flakyMX serves both MX of twoMX, answering MAIL with a 451 (code, text)
// while broken is set, as it is at first. attempts counts the MAIL
// commands; delivered, the messages the two took.
func (w *relayWorld) flakyMX(code smtp.EnhancedCode, text string) (broken *atomic.Bool, attempts *atomic.Int32, delivered func() int) {
	broken, attempts = new(atomic.Bool), new(atomic.Int32)
	broken.Store(true)
	busy := func(string) *smtp.SMTPError {
		attempts.Add(1)
		if broken.Load() {
			return &smtp.SMTPError{Code: 451, EnhancedCode: code, Message: text}
		}
		return nil
	}
	mx1 := w.mx("127.0.0.2", smtptest.MXOptions{MailReply: busy})
	mx2 := w.mx("127.0.0.3", smtptest.MXOptions{MailReply: busy})
	return broken, attempts, func() int { return mx1.Count() + mx2.Count() }
}

// queueList runs `facteur queue list` and returns its output.
func (w *relayWorld) queueList() string {
	w.t.Helper()
	return w.facteur("queue", "--config", "facteur.toml", "list")
}

func (w *relayWorld) facteur(args ...string) string {
	w.t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Dir = w.dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		w.t.Fatalf("facteur %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// waitQueue polls `facteur queue list` until it satisfies ok.
func (w *relayWorld) waitQueue(ok func(string) bool, what string) string {
	w.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		out := w.queueList()
		if ok(out) {
			return out
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("queue never became %s:\n%s", what, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func emptyQueue(out string) bool { return strings.Contains(out, "queue is empty") }

func TestRelayPrefersLowestMXAndFallsBack(t *testing.T) {
	w := newRelayWorld(t, "")
	w.twoMX()
	mx1 := w.mx("127.0.0.2", smtptest.MXOptions{})
	mx2 := w.mx("127.0.0.3", smtptest.MXOptions{})
	w.start()

	if err := send(w.relay, "alice@example.test", []string{"bob@remote.test"}, message); err != nil {
		t.Fatal(err)
	}
	mx1.Wait(t, 1, 20*time.Second)
	got := mx1.Messages()[0]
	if got.From != "alice@example.test" || got.To[0] != "bob@remote.test" || !strings.HasSuffix(string(got.Data), "\r\n"+message) ||
		!strings.HasPrefix(string(got.Data), "Received: from client.example.org") {
		t.Errorf("mx1 got %+v", got)
	}
	if strings.Contains(string(got.Data), "Return-Path") {
		t.Error("Return-Path added to relayed mail")
	}

	mx1.Stop() // connection refused: the backup takes it
	if err := send(w.relay, "alice@example.test", []string{"bob@remote.test"}, message); err != nil {
		t.Fatal(err)
	}
	mx2.Wait(t, 1, 20*time.Second)
	if mx1.Count() != 1 {
		t.Errorf("mx1 has %d messages, want 1", mx1.Count())
	}
	w.waitQueue(emptyQueue, "empty")
	if !strings.Contains(w.out.String(), "msg=delivery") || !strings.Contains(w.out.String(), "host=mx2.remote.test") {
		t.Error("no delivery log line naming the host")
	}
}

func TestRelayRetriesTransientFailureAndNeverSendsTwice(t *testing.T) {
	w := newRelayWorld(t, "")
	w.twoMX()
	broken, _, delivered := w.flakyMX(smtp.EnhancedCode{4, 3, 0}, "try again later")
	w.start()
	if err := send(w.relay, "alice@example.test", []string{"bob@remote.test"}, message); err != nil {
		t.Fatal(err)
	}
	out := w.waitQueue(func(s string) bool { return strings.Contains(s, "try again later") }, "deferred")
	if !strings.Contains(out, "bob@remote.test") || !strings.Contains(out, "pending") || !strings.Contains(out, "451 4.3.0") ||
		!strings.Contains(out, " relay ") {
		t.Errorf("queue list:\n%s", out)
	}
	broken.Store(false)
	w.waitQueue(emptyQueue, "empty after recovery")
	if n := delivered(); n != 1 {
		t.Errorf("delivered %d times, want once", n)
	}
	if len(maildirNew(t, filepath.Join(w.dir, "var", "mail"), "alice")) != 0 {
		t.Error("a transient failure was bounced")
	}
}

func TestRelayImplicitMX(t *testing.T) {
	w := newRelayWorld(t, "")
	w.dns.A("v4.test", "127.0.0.2")
	w.dns.AAAA("v6.test", "::1")
	v4 := w.mx("127.0.0.2", smtptest.MXOptions{})
	v6 := w.mx("::1", smtptest.MXOptions{})
	w.start()
	if err := send(w.relay, "alice@example.test", []string{"a@v4.test"}, message); err != nil {
		t.Fatal(err)
	}
	if err := send(w.relay, "alice@example.test", []string{"b@v6.test"}, message); err != nil {
		t.Fatal(err)
	}
	v4.Wait(t, 1, 20*time.Second)
	v6.Wait(t, 1, 20*time.Second)
}

func TestRelayBouncesNullMXAndNXDomainAtOnce(t *testing.T) {
	w := newRelayWorld(t, "")
	w.dns.NullMX("nomail.test")
	w.dns.NXDomain("nowhere.test")
	w.start()
	if err := send(w.relay, "alice@example.test", []string{"x@nomail.test", "y@nowhere.test"}, message); err != nil {
		t.Fatal(err)
	}
	bounces := w.waitMail("alice", 1)
	w.waitQueue(emptyQueue, "empty")
	b := bounces[0]
	for _, want := range []string{"Return-Path: <>", "report-type=delivery-status", "Final-Recipient: rfc822; x@nomail.test",
		"Status: 5.1.10", "Final-Recipient: rfc822; y@nowhere.test", "Status: 5.1.2", "Subject: e2e"} {
		if !strings.Contains(b, want) {
			t.Errorf("bounce lacks %q:\n%s", want, b)
		}
	}
	if strings.Contains(b, "Hello from the e2e test.") {
		t.Error("bounce returns the original body")
	}
	if n := w.dns.Queries("nomail.test"); n != 1 {
		t.Errorf("nomail.test asked %d times: a permanent failure was retried", n)
	}
}

func TestRelayRetriesSERVFAIL(t *testing.T) {
	w := newRelayWorld(t, "")
	w.dns.ServFail("flaky.test")
	w.start()
	if err := send(w.relay, "alice@example.test", []string{"z@flaky.test"}, message); err != nil {
		t.Fatal(err)
	}
	out := w.waitQueue(func(s string) bool { return strings.Contains(s, "4.4.3") }, "deferred on SERVFAIL")
	// No server answered: no reply code, no empty host, the domain tried.
	if !strings.Contains(out, "last: 4.4.3 mx flaky.test: ") || strings.Contains(out, "()") {
		t.Errorf("queue list:\n%s", out)
	}
	w.dns.Recover("flaky.test")
	w.dns.MX("flaky.test", 10, "mx1.flaky.test")
	w.dns.A("mx1.flaky.test", "127.0.0.2")
	mx := w.mx("127.0.0.2", smtptest.MXOptions{})
	mx.Wait(t, 1, 20*time.Second)
	w.waitQueue(emptyQueue, "empty")
}

func TestRelayTLSPolicies(t *testing.T) {
	ca := smtptest.NewCA(t, "mx1.remote.test")
	t.Run("opportunistic uses STARTTLS when offered", func(t *testing.T) {
		w := newRelayWorld(t, "")
		w.twoMX()
		mx := w.mx("127.0.0.2", smtptest.MXOptions{TLS: ca.ServerTLS()})
		w.start()
		send(w.relay, "alice@example.test", []string{"bob@remote.test"}, message)
		mx.Wait(t, 1, 20*time.Second)
		if !mx.Messages()[0].TLS {
			t.Error("delivered in plaintext although STARTTLS was offered")
		}
	})
	t.Run("opportunistic falls back to plaintext", func(t *testing.T) {
		w := newRelayWorld(t, "")
		w.twoMX()
		mx := w.mx("127.0.0.2", smtptest.MXOptions{})
		w.start()
		send(w.relay, "alice@example.test", []string{"bob@remote.test"}, message)
		mx.Wait(t, 1, 20*time.Second)
	})
	t.Run("required never sends in plaintext", func(t *testing.T) {
		w := newRelayWorld(t, "tls = \"required\"\n")
		w.twoMX()
		mx1 := w.mx("127.0.0.2", smtptest.MXOptions{})
		mx2 := w.mx("127.0.0.3", smtptest.MXOptions{})
		w.start()
		send(w.relay, "alice@example.test", []string{"bob@remote.test"}, message)
		w.waitQueue(func(s string) bool { return strings.Contains(s, "4.7.4") }, "deferred for lack of TLS")
		if mx1.Count()+mx2.Count() != 0 {
			t.Error("delivered in plaintext under tls = required")
		}
	})
}

func TestRelayPartialFailureBouncesOnlyTheFailedRecipient(t *testing.T) {
	w := newRelayWorld(t, "")
	w.twoMX()
	mx := w.mx("127.0.0.2", smtptest.MXOptions{RcptReply: func(rcpt string) *smtp.SMTPError {
		if strings.HasPrefix(rcpt, "gone@") {
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "gone@remote.test: mailbox unavailable"}
		}
		return nil
	}})
	w.start()
	if err := send(w.relay, "alice@example.test", []string{"bob@remote.test", "gone@remote.test"}, message); err != nil {
		t.Fatal(err)
	}
	mx.Wait(t, 1, 20*time.Second)
	if to := mx.Messages()[0].To; len(to) != 1 || to[0] != "bob@remote.test" {
		t.Errorf("delivered to %v", to)
	}
	b := w.waitMail("alice", 1)[0]
	for _, want := range []string{"gone@remote.test: mailbox unavailable", "Final-Recipient: rfc822; gone@remote.test", "Status: 5.1.1", "Remote-MTA: dns; mx1.remote.test"} {
		if !strings.Contains(b, want) {
			t.Errorf("bounce lacks %q:\n%s", want, b)
		}
	}
	if strings.Contains(b, "Final-Recipient: rfc822; bob@remote.test") {
		t.Error("the delivered recipient is in the bounce")
	}
	w.waitQueue(emptyQueue, "empty")
}

func TestRelayExpiryBouncesAndBouncesAreNeverBounced(t *testing.T) {
	w := newRelayWorld(t, "lifetime = \"2s\"\n")
	w.twoMX()
	w.dns.NXDomain("gone.test")
	tempfail := func(string) *smtp.SMTPError {
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 1}, Message: "overloaded"}
	}
	w.mx("127.0.0.2", smtptest.MXOptions{MailReply: tempfail})
	w.mx("127.0.0.3", smtptest.MXOptions{MailReply: tempfail})
	w.start()
	// A local sender gets the expiry bounce in its Maildir.
	if err := send(w.relay, "alice@example.test", []string{"bob@remote.test"}, message); err != nil {
		t.Fatal(err)
	}
	b := w.waitMail("alice", 1)[0]
	if !strings.Contains(b, "Status: 5.4.7") || !strings.Contains(b, "overloaded") {
		t.Errorf("expiry bounce:\n%s", b)
	}
	// A sender whose domain does not exist: the bounce fails too, and is
	// dropped rather than bounced.
	if err := send(w.relay, "someone@gone.test", []string{"bob@remote.test"}, message); err != nil {
		t.Fatal(err)
	}
	waitLog(t, w.instance, "bounce undeliverable, dropped")
	w.waitQueue(emptyQueue, "empty")
	if n := len(maildirNew(t, filepath.Join(w.dir, "var", "mail"), "alice")); n != 1 {
		t.Errorf("alice has %d messages, want only the first bounce", n)
	}
}

func TestRelayDelayWarningOnceThenDelivered(t *testing.T) {
	w := newRelayWorld(t, "delay_warning = \"1s\"\n")
	w.twoMX()
	broken, attempts, delivered := w.flakyMX(smtp.EnhancedCode{4, 7, 1}, "greylisted, try again")
	w.start()
	if err := send(w.relay, "alice@example.test", []string{"bob@remote.test"}, message); err != nil {
		t.Fatal(err)
	}
	warning := w.waitMail("alice", 1)[0]
	for _, want := range []string{"Subject: Delayed Mail (still being retried)", "Action: delayed", "Status: 4.7.1",
		"Final-Recipient: rfc822; bob@remote.test", "greylisted, try again", "Will-Retry-Until: "} {
		if !strings.Contains(warning, want) {
			t.Errorf("delay warning lacks %q:\n%s", want, warning)
		}
	}
	// Two more rounds of retries (each tries both MX) still late: no second warning.
	seen := attempts.Load()
	deadline := time.Now().Add(20 * time.Second)
	for attempts.Load() < seen+4 {
		if time.Now().After(deadline) {
			t.Fatal("no retries after the warning")
		}
		time.Sleep(20 * time.Millisecond)
	}
	broken.Store(false)
	w.waitQueue(emptyQueue, "empty after recovery")
	if n := delivered(); n != 1 {
		t.Errorf("delivered %d times, want once", n)
	}
	if n := len(maildirNew(t, filepath.Join(w.dir, "var", "mail"), "alice")); n != 1 {
		t.Errorf("alice has %d messages, want the one warning", n)
	}
}

func TestRelayRefusesClientsOutsideRelayNetworks(t *testing.T) {
	w := newRelayWorld(t, "")
	cfg, _ := os.ReadFile(filepath.Join(w.dir, "facteur.toml"))
	w.writeFile("facteur.toml", "relay_networks = [\"192.0.2.0/24\"]\n"+string(cfg))
	w.start()
	err := send(w.relay, "alice@example.test", []string{"bob@remote.test"}, message)
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 530 || se.EnhancedCode != (smtp.EnhancedCode{5, 7, 0}) {
		t.Fatalf("got %v, want 530 5.7.0", err)
	}
}

func TestRelayMixedLocalAndRemote(t *testing.T) {
	w := newRelayWorld(t, "")
	w.twoMX()
	mx := w.mx("127.0.0.2", smtptest.MXOptions{})
	w.start()
	if err := send(w.relay, "x@example.org", []string{"bob@remote.test", "alice@example.test"}, message); err != nil {
		t.Fatal(err)
	}
	mx.Wait(t, 1, 20*time.Second)
	local := w.waitMail("alice", 1)[0]
	if !strings.HasPrefix(local, "Return-Path: <x@example.org>\r\nDelivered-To: alice@example.test\r\nReceived: ") || !strings.HasSuffix(local, message) {
		t.Errorf("local copy:\n%s", local)
	}
}

func TestRelaySurvivesKillAndDeliversEachMessageOnce(t *testing.T) {
	w := newRelayWorld(t, "")
	w.twoMX() // nothing listens yet: every attempt is refused
	w.start()
	const n = 200
	c, err := smtp.Dial(w.relay)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		body := fmt.Sprintf("Message-ID: <%d@e2e>\r\nSubject: %d\r\n\r\nbody\r\n", i, i)
		if err := c.SendMail("alice@example.test", []string{"bob@remote.test"}, strings.NewReader(body)); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	c.Quit()
	w.cmd.Process.Signal(syscall.SIGKILL)
	<-w.exited

	if out := w.queueList(); !strings.Contains(out, fmt.Sprintf("%d message(s)", n)) {
		t.Fatalf("after SIGKILL the stopped queue lists:\n%s", out)
	}
	mx1 := w.mx("127.0.0.2", smtptest.MXOptions{})
	w.start()
	mx1.Wait(t, n, 30*time.Second)
	w.waitQueue(emptyQueue, "empty")
	seen := map[string]int{}
	for _, m := range mx1.Messages() {
		id := strings.SplitN(strings.SplitN(string(m.Data), "Message-ID: <", 2)[1], ">", 2)[0]
		seen[id]++
	}
	for i := range n {
		if c := seen[fmt.Sprintf("%d@e2e", i)]; c != 1 {
			t.Errorf("message %d delivered %d times", i, c)
		}
	}
}

func TestQueueCommand(t *testing.T) {
	w := newRelayWorld(t, "min_backoff = \"1h\"\nmax_backoff = \"2h\"\n")
	w.twoMX()
	w.start()
	for range 2 {
		if err := send(w.relay, "alice@example.test", []string{"bob@remote.test"}, message); err != nil {
			t.Fatal(err)
		}
	}
	out := w.waitQueue(func(s string) bool { return strings.Count(s, "in 59m") == 2 }, "two deferred messages")
	ids := queueIDs(out)
	if len(ids) != 2 {
		t.Fatalf("ids %v in:\n%s", ids, out)
	}
	if got := w.facteur("queue", "--config", "facteur.toml", "remove", ids[0]); !strings.Contains(got, "removed "+ids[0]) {
		t.Errorf("remove: %s", got)
	}
	if out := w.queueList(); strings.Contains(out, ids[0]) || !strings.Contains(out, ids[1]) {
		t.Errorf("after remove:\n%s", out)
	}
	mx := w.mx("127.0.0.2", smtptest.MXOptions{})
	if got := w.facteur("queue", "--config", "facteur.toml", "flush"); !strings.Contains(got, "1 message(s) due now") {
		t.Errorf("flush: %s", got)
	}
	mx.Wait(t, 1, 20*time.Second)
	w.waitQueue(emptyQueue, "empty after flush")

	// With the server stopped the command works on the spool itself.
	w.dns.ServFail("elsewhere.test")
	send(w.relay, "alice@example.test", []string{"bob@elsewhere.test"}, message)
	out = w.waitQueue(func(s string) bool { return strings.Contains(s, "bob@elsewhere.test") }, "holding the new message")
	w.stop(syscall.SIGTERM)
	stopped := w.queueList()
	if !strings.Contains(stopped, "bob@elsewhere.test") {
		t.Errorf("stopped list:\n%s", stopped)
	}
	id := queueIDs(out)[0]
	w.facteur("queue", "--config", "facteur.toml", "remove", id)
	if out := w.queueList(); !emptyQueue(out) {
		t.Errorf("after offline remove:\n%s", out)
	}
}

// queueIDs picks the message ids out of `facteur queue list`.
func queueIDs(out string) []string {
	var ids []string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && len(f[0]) == 16 && f[0] != "ID" {
			ids = append(ids, f[0])
		}
	}
	return ids
}

// -n debug (log.level = "debug") logs each session's dialogue, inbound and
// outbound, one line per command and reply, without the message.
func TestDebugLevelLogsBothDialogues(t *testing.T) {
	w := newRelayWorld(t, "")
	w.twoMX()
	mx := w.mx("127.0.0.2", smtptest.MXOptions{})
	w.start("-n", "debug")
	if err := send(w.relay, "alice@example.test", []string{"bob@remote.test"}, message); err != nil {
		t.Fatal(err)
	}
	mx.Wait(t, 1, 20*time.Second)
	w.waitQueue(emptyQueue, "empty")
	out := w.out.String()
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`msg="smtp command" conn=\d+ line="MAIL FROM:<alice@example.test>`),
		regexp.MustCompile(`msg="smtp reply" conn=\d+ line="250 2.0.0 Ok: queued as \w+"`),
		regexp.MustCompile(`msg="smtp message data" conn=\d+ bytes=\d+`),
		regexp.MustCompile(`msg="smtp command" host=mx1.remote.test addr=127.0.0.2 session=\d+ line="RCPT TO:<bob@remote.test>"`),
		regexp.MustCompile(`msg="smtp reply" host=mx1.remote.test addr=127.0.0.2 session=\d+ line="250 2.0.0 OK: queued"`),
	} {
		if !want.MatchString(out) {
			t.Errorf("no line matching %s", want)
		}
	}
	if strings.Contains(out, "Hello from the e2e test") {
		t.Error("the message body is in the log")
	}
}

// TestRelayDeferredAtMAILEachKeepsItsReply: a 4xx to MAIL concerns its
// transaction, not the host. Many messages go to a domain whose MX defers
// MAIL and takes RCPT and DATA all the same, as Postfix's smtp-sink -r mail
// does, in sessions of many messages each: every message is tried, and
// `queue list` shows each its own reply, never "no MX host to try" for
// messages a dropped session left untried.
func TestRelayDeferredAtMAILEachKeepsItsReply(t *testing.T) {
	const n = 100
	w := newRelayWorld(t, "min_backoff = \"1h\"\nmax_backoff = \"2h\"\n")
	w.dns.MX("remote.test", 10, "mx1.remote.test")
	w.dns.A("mx1.remote.test", "127.0.0.2")
	sink := smtptest.NewSink(t, "127.0.0.2", w.port, func(arg string) string {
		from, _, _ := strings.Cut(strings.TrimPrefix(arg, "FROM:"), " ")
		return "451 4.7.1 " + from + " greylisted"
	})
	// The messages wait for DNS, then go all at once, many per session.
	w.dns.ServFail("remote.test")
	w.start()
	for k := range n {
		if err := send(w.relay, fmt.Sprintf("s%d@example.test", k), []string{"bob@remote.test"}, message); err != nil {
			t.Fatal(err)
		}
	}
	w.waitQueue(func(s string) bool { return strings.Count(s, "in 59m") == n }, "waiting for DNS")
	w.dns.Recover("remote.test")
	w.facteur("queue", "--config", "facteur.toml", "flush")
	out := w.waitQueue(func(s string) bool { return strings.Count(s, "last: 451 ") == n }, "all tried")
	for k := range n {
		if !strings.Contains(out, fmt.Sprintf("last: 451 4.7.1 mx1.remote.test[127.0.0.2]: 451 4.7.1 <s%d@example.test> greylisted", k)) {
			t.Errorf("message from s%d has not its own reply", k)
		}
	}
	if sink.Mails() != n {
		t.Errorf("%d MAIL for %d messages", sink.Mails(), n)
	}
}
