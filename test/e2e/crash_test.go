package e2e

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"facteur/internal/smtptest"
)

// crashBody is a message that names itself at both ends, so that a file
// cut short anywhere is seen.
func crashBody(id string) string {
	return "From: load@example.test\r\nMessage-ID: <" + id + ">\r\nSubject: crash test\r\n\r\n" +
		strings.Repeat("filler line to make the message span several writes\r\n", 150) + "end of " + id + "\r\n"
}

var messageID = regexp.MustCompile(`Message-ID: <([^>]+)>`)

// loadClient sends messages over one connection after another until stop
// closes, and records the Message-ID of each that got a 250.
func loadClient(addr, prefix, rcpt string, stop <-chan struct{}, acked func(string)) {
	for n := 0; ; {
		select {
		case <-stop:
			return
		default:
		}
		c, err := smtp.Dial(addr)
		if err != nil {
			time.Sleep(20 * time.Millisecond) // facteur is restarting
			continue
		}
		if c.Hello("load.example.org") != nil {
			c.Close()
			continue
		}
		for ; ; n++ {
			select {
			case <-stop:
				c.Close()
				return
			default:
			}
			id := fmt.Sprintf("%s-%d@crash", prefix, n)
			if err := c.SendMail("load@example.test", []string{rcpt}, strings.NewReader(crashBody(id))); err != nil {
				break
			}
			acked(id)
		}
		c.Close()
	}
}

// SIGKILL at random moments under load, ten times: every message that got
// a 250 ends up in Maildir new/ or at the remote MX, whole; what is left in
// the spool is only mail still to deliver.
func TestCrashUnderLoadLosesNothingAcknowledged(t *testing.T) {
	w := newRelayWorld(t, "")
	w.twoMX()
	mx := w.mx("127.0.0.2", smtptest.MXOptions{})
	w.start()

	var mu sync.Mutex
	acked := map[string]bool{} // Message-ID -> relayed (else local)
	record := func(relayed bool) func(string) {
		return func(id string) { mu.Lock(); acked[id] = relayed; mu.Unlock() }
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Go(func() { loadClient(w.smtp, fmt.Sprintf("in%d", i), "alice@example.test", stop, record(false)) })
		wg.Go(func() { loadClient(w.relay, fmt.Sprintf("out%d", i), "bob@remote.test", stop, record(true)) })
	}
	const kills = 10
	for range kills {
		time.Sleep(time.Duration(50+rand.IntN(250)) * time.Millisecond)
		w.cmd.Process.Signal(syscall.SIGKILL)
		<-w.exited
		w.start()
	}
	close(stop)
	wg.Wait()

	mu.Lock()
	var local, relayed int
	for _, r := range acked {
		if r {
			relayed++
		} else {
			local++
		}
	}
	mu.Unlock()
	if local == 0 || relayed == 0 {
		t.Fatalf("load did not get through: %d local and %d relayed messages acknowledged", local, relayed)
	}
	w.waitQueue(emptyQueue, "empty after the last restart")

	seen := map[string]int{}
	count := func(where, data string) {
		m := messageID.FindStringSubmatch(data)
		if m == nil || !strings.HasSuffix(data, crashBody(m[1])) {
			t.Errorf("%s: partial or foreign message (%d bytes): %.80q", where, len(data), data)
			return
		}
		seen[m[1]]++
	}
	root := filepath.Join(w.dir, "var", "mail")
	for _, data := range maildirNew(t, root, "alice") {
		count("alice/new", data)
	}
	for _, m := range mx.Messages() {
		count("mx", string(m.Data))
	}
	lost, dups := 0, 0
	for id := range acked {
		switch n := seen[id]; {
		case n == 0:
			lost++
			t.Errorf("acknowledged message %s was lost", id)
		case n > 1:
			dups += n - 1
		}
	}
	t.Logf("%d kills: %d local and %d relayed messages acknowledged, %d lost, %d duplicates (allowed: a kill between the remote 250 and the spool removal)",
		kills, local, relayed, lost, dups)

	// The spool holds nothing now that the queue is empty but spent files
	// kept for reuse and the journal of attempts: no message, envelope,
	// temporary file or corrupt/ folder was left behind.
	ents, err := os.ReadDir(filepath.Join(w.dir, "var", "queue"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), ".spare-") && !(e.Name() == "attempts" && e.IsDir()) {
			t.Errorf("spool still holds %s with the queue empty", e.Name())
		}
	}
}

// Leftovers of a crash are cleaned at start-up: Maildir tmp/ files older
// than 36 hours (younger ones may be deliveries of another process), and
// the spool's temporary files and messages that never got an envelope.
func TestStartupCleansCrashLeftovers(t *testing.T) {
	in := setup(t, "")
	in.start()
	if err := send(in.smtp, "a@example.org", []string{"alice@example.test"}, message); err != nil {
		t.Fatal(err)
	}
	in.cmd.Process.Signal(syscall.SIGKILL)
	<-in.exited

	tmp := filepath.Join(in.dir, "var", "mail", "alice", "Maildir", "tmp")
	queue := filepath.Join(in.dir, "var", "queue")
	old := time.Now().Add(-37 * time.Hour)
	for path, age := range map[string]time.Time{
		filepath.Join(tmp, "1.M1P1Q1.stale"):                 old,
		filepath.Join(tmp, "2.M2P2Q2.recent"):                time.Now().Add(-time.Hour),
		filepath.Join(queue, ".tmp-123456"):                  time.Now(),
		filepath.Join(queue, "06H01FP8AYNGG6C8.msg"):         time.Now(), // no envelope: never acknowledged
		filepath.Join(queue, ".tmp-"+strings.Repeat("x", 8)): old,
	} {
		if err := os.WriteFile(path, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
		os.Chtimes(path, age, age)
	}
	in.start()
	// The server serves at once; the spool is gone through in the background.
	waitLog(t, in, "queue: removing message never acknowledged")
	names := func(dir string) []string {
		ents, _ := os.ReadDir(dir)
		var out []string
		for _, e := range ents {
			out = append(out, e.Name())
		}
		return out
	}
	if got := names(tmp); len(got) != 1 || got[0] != "2.M2P2Q2.recent" {
		t.Errorf("Maildir tmp/ after start-up: %v, want only the recent file", got)
	}
	if got := names(queue); len(got) != 1 || got[0] != "attempts" {
		t.Errorf("spool after start-up: %v, want only the journal of attempts", got)
	}
	if got := maildirNew(t, filepath.Join(in.dir, "var", "mail"), "alice"); len(got) != 1 {
		t.Errorf("alice has %d messages, want the one delivered before the kill", len(got))
	}
}
