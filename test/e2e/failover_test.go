package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// mxHost is a facteur serving remote.test as one of its MX hosts: its smtp
// listener on ip and the relay's outbound port, its Maildirs under root,
// which the other MX host shares, and the same hostname as the other.
func mxHost(t *testing.T, ip string, port int, root string) *instance {
	t.Helper()
	in := setup(t, fmt.Sprintf("maildir_root = %q\n", root))
	addr := fmt.Sprintf("%s:%d", ip, port)
	cfg := readFile(t, filepath.Join(in.dir, "facteur.toml"))
	cfg = strings.Replace(cfg, `domains = ["example.test"]`, `domains = ["remote.test"]`, 1)
	cfg = strings.Replace(cfg, fmt.Sprintf("smtp = [%q]", in.smtp), fmt.Sprintf("smtp = [%q]", addr), 1)
	in.writeFile("facteur.toml", cfg)
	in.writeFile("users", "alice\n")
	in.smtp = addr
	return in
}

// writerPID reads the PID out of a Maildir file name
// (<seconds>.M<usec>P<pid>R<random>Q<counter>.<host>): the two MX hosts
// share a hostname, the PID tells which process delivered the file.
var writerPID = regexp.MustCompile(`P(\d+)R`)

// TestFailoverBetweenTwoMXHostsSharingAMaildirRoot: a relaying facteur
// sends a stream of messages to remote.test, whose two MX records of equal
// preference name two facteur hosts delivering into one Maildir root. One
// of them is SIGKILLed mid-stream and restarted later on the same data
// dir. Every message the relay acknowledged is in the Maildir, whole; the
// only duplicates are messages the killed host had already delivered when
// it died, before the relay read its 250.
func TestFailoverBetweenTwoMXHostsSharingAMaildirRoot(t *testing.T) {
	// perDomain bounds the relay's transactions to remote.test at once.
	// Each has at most one message whose final dot is sent and whose reply
	// is not read (pipe.go: the dot goes with the next message's commands,
	// and that reply is read before any other), so at most perDomain
	// messages can be in the killed host's Maildir without the relay
	// knowing: those, and only those, are sent again, to the other host.
	const (
		n         = 300
		perDomain = 4
	)
	w := newRelayWorld(t, fmt.Sprintf("per_domain = %d\n", perDomain))
	w.dns.MX("remote.test", 10, "mx1.remote.test")
	w.dns.MX("remote.test", 10, "mx2.remote.test")
	w.dns.A("mx1.remote.test", "127.0.0.2")
	w.dns.A("mx2.remote.test", "127.0.0.3")
	root := t.TempDir()
	victim := mxHost(t, "127.0.0.2", w.port, root)
	survivor := mxHost(t, "127.0.0.3", w.port, root)
	victim.start()
	survivor.start()
	w.start()

	newDir := filepath.Join(root, "alice", "Maildir", "new")
	// byWriter counts the files in new/ per PID of the process that wrote them.
	byWriter := func() map[int]int {
		ents, err := os.ReadDir(newDir)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		count := map[int]int{}
		for _, e := range ents {
			m := writerPID.FindStringSubmatch(e.Name())
			if m == nil {
				t.Fatalf("Maildir file %s has no PID in its name", e.Name())
			}
			pid, _ := strconv.Atoi(m[1])
			count[pid]++
		}
		return count
	}
	waitFor := func(what string, ok func(map[int]int) bool) map[int]int {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			c := byWriter()
			if ok(c) {
				return c
			}
			if time.Now().After(deadline) {
				t.Fatalf("never %s: files in new/ per writing PID %v", what, c)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	// Three clients submit to the relay until n messages got a 250.
	var mu sync.Mutex
	acked := map[string]bool{}
	stop := make(chan struct{})
	halt := sync.OnceFunc(func() { close(stop) })
	record := func(id string) {
		mu.Lock()
		defer mu.Unlock()
		acked[id] = true
		if len(acked) >= n {
			halt()
		}
	}
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Go(func() { loadClient(w.relay, fmt.Sprintf("c%d", i), "alice@remote.test", stop, record) })
	}
	t.Cleanup(func() { halt(); wg.Wait() })

	// The kill comes once the victim has taken a share of the stream.
	killed := victim.cmd.Process.Pid
	before := waitFor("delivered by both hosts", func(c map[int]int) bool {
		return c[killed] >= 20 && c[survivor.cmd.Process.Pid] >= 1
	})
	victim.cmd.Process.Signal(syscall.SIGKILL)
	<-victim.exited
	mu.Lock()
	ackedAtKill := len(acked)
	mu.Unlock()
	total := 0
	for _, k := range before {
		total += k
	}
	if total >= n {
		t.Fatalf("all %d messages were delivered before the kill: nothing was mid-load", total)
	}
	// The survivor alone takes the stream, then the victim comes back.
	waitFor("failed over to the survivor", func(c map[int]int) bool {
		return c[survivor.cmd.Process.Pid] >= before[survivor.cmd.Process.Pid]+20
	})
	victim.start()

	wg.Wait() // stop closed: n messages acknowledged
	w.waitQueue(emptyQueue, "empty")

	seen := map[string][]int{} // Message-ID -> PIDs that delivered it
	ents, err := os.ReadDir(newDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		data := readFile(t, filepath.Join(newDir, e.Name()))
		m := messageID.FindStringSubmatch(data)
		if m == nil || !strings.HasSuffix(data, crashBody(m[1])) {
			t.Errorf("new/%s: partial or foreign message (%d bytes): %.80q", e.Name(), len(data), data)
			continue
		}
		pid, _ := strconv.Atoi(writerPID.FindStringSubmatch(e.Name())[1])
		seen[m[1]] = append(seen[m[1]], pid)
	}
	lost, dups := 0, 0
	for id := range acked {
		switch pids := seen[id]; {
		case len(pids) == 0:
			lost++
			t.Errorf("acknowledged message %s was lost", id)
		case len(pids) > 2 || len(pids) == 2 && pids[0] != killed && pids[1] != killed:
			t.Errorf("message %s delivered %d times, by PIDs %v: only a copy the killed host (PID %d) took may be sent again", id, len(pids), pids, killed)
		case len(pids) == 2:
			dups++
		}
	}
	for id := range seen {
		if !acked[id] {
			t.Errorf("message %s delivered but never acknowledged", id)
		}
	}
	if dups > perDomain {
		t.Errorf("%d messages delivered twice, want at most %d (per_domain): one per transaction under way at the kill", dups, perDomain)
	}
	// A delivery cut short leaves its file in tmp/, which start-up cleans
	// only when it is old enough not to be another host's delivery.
	tmp, _ := os.ReadDir(filepath.Join(root, "alice", "Maildir", "tmp"))
	if len(tmp) > perDomain {
		t.Errorf("%d files left in tmp/, want at most %d: one per transaction under way at the kill", len(tmp), perDomain)
	}
	t.Logf("%d acknowledged; killed after %d acknowledged and %d delivered (%v per PID); %d lost, %d delivered twice, %d left in tmp/; finally %v per PID",
		len(acked), ackedAtKill, total, before, lost, dups, len(tmp), byWriter())
}
