package e2e

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"facteur/internal/smtptest"
)

// mountTmpfs mounts a tmpfs of size at dir, unmounted at cleanup; it skips
// the test unless it runs as root.
func mountTmpfs(t *testing.T, dir, size string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs needs root (CI runs as root)")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0700", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", dir, err, out)
		}
	})
}

// fill writes zeros into path until the disk is full or only leave bytes
// remain free.
func fill(t *testing.T, path string, leave int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		var st syscall.Statfs_t
		if err := syscall.Statfs(filepath.Dir(path), &st); err != nil {
			t.Fatal(err)
		}
		free := int64(st.Bavail) * st.Bsize
		if free <= leave {
			return
		}
		if _, err := f.Write(buf[:min(int64(len(buf)), free-leave)]); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return
			}
			t.Fatal(err)
		}
	}
}

// replyOf extracts the SMTP reply from a client error.
func replyOf(err error) string {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return strings.TrimSpace(strings.Join([]string{itoa(se.Code), itoa(se.EnhancedCode[0]) + "." + itoa(se.EnhancedCode[1]) + "." + itoa(se.EnhancedCode[2])}, " "))
	}
	if err == nil {
		return "250"
	}
	return err.Error()
}

// A full disk refuses new mail with 452 4.3.1 and leaves nothing behind;
// mail already queued is intact and flows once space is back.
func TestDiskFull(t *testing.T) {
	w := newRelayWorld(t, "")
	mountTmpfs(t, filepath.Join(w.dir, "var"), "16m")
	cfg, _ := os.ReadFile(filepath.Join(w.dir, "facteur.toml"))
	w.writeFile("facteur.toml", strings.Replace(string(cfg), "[listen]", "[limits]\nmin_free_bytes = 2097152\n[listen]", 1))
	w.twoMX() // no MX listens yet: relayed mail stays queued
	w.start()

	queued := "Message-ID: <queued@e2e>\r\nSubject: queued before the disk filled\r\n\r\n" + strings.Repeat("queued body\r\n", 1000)
	for range 3 {
		if err := send(w.relay, "alice@example.test", []string{"bob@remote.test"}, queued); err != nil {
			t.Fatal(err)
		}
	}
	if err := send(w.smtp, "a@example.org", []string{"alice@example.test"}, message); err != nil {
		t.Fatal(err)
	}
	filler := filepath.Join(w.dir, "var", "filler")

	// Above the floor, a message bigger than what is left fills the disk
	// for real: 452 4.3.1 at the end of DATA, nothing half-written.
	fill(t, filler, 3<<20)
	big := "Subject: too big for the disk\r\n\r\n" + strings.Repeat(strings.Repeat("z", 76)+"\r\n", 6<<20/78)
	for _, addr := range []string{w.smtp, w.relay} {
		rcpt := "alice@example.test"
		if addr == w.relay {
			rcpt = "bob@remote.test"
		}
		if got := replyOf(send(addr, "a@example.org", []string{rcpt}, big)); got != "452 4.3.1" {
			t.Errorf("message bigger than the free space via %s: got %s, want 452 4.3.1", addr, got)
		}
	}
	// Below the floor: refused at MAIL already (the floor is checked at
	// most once a second, so wait for it to be seen).
	fill(t, filler, 1<<20)
	delivered := 1
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := send(w.smtp, "a@example.org", []string{"alice@example.test"}, message)
		if replyOf(err) == "452 4.3.1" {
			break
		}
		if err == nil {
			delivered++ // taken before the floor was seen: must be whole
		}
		if time.Now().After(deadline) {
			t.Fatalf("below min_free_bytes: got %v, want 452 4.3.1", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	c, err := smtp.Dial(w.relay)
	if err != nil {
		t.Fatal(err)
	}
	c.Hello("c")
	if got := replyOf(c.Mail("alice@example.test", nil)); got != "452 4.3.1" {
		t.Errorf("MAIL on the relay below the floor: got %s, want 452 4.3.1", got)
	}
	c.Close()

	// Nothing half-written: no temporary file in the spool or in tmp/, and
	// new/ holds only complete messages, the ones that got a 250.
	spool := filepath.Join(w.dir, "var", "queue")
	ents, _ := os.ReadDir(spool)
	msgs := 0
	for _, e := range ents {
		switch {
		case strings.HasSuffix(e.Name(), ".msg"):
			msgs++
			b, _ := os.ReadFile(filepath.Join(spool, e.Name()))
			if !strings.HasSuffix(string(b), queued) {
				t.Errorf("queued message %s damaged (%d bytes)", e.Name(), len(b))
			}
		case strings.HasSuffix(e.Name(), ".env"), strings.HasPrefix(e.Name(), ".spare-"), e.Name() == "attempts" && e.IsDir():
		default:
			t.Errorf("spool holds %s", e.Name())
		}
	}
	if msgs != 3 {
		t.Errorf("%d messages in the spool, want the 3 queued before", msgs)
	}
	root := filepath.Join(w.dir, "var", "mail")
	got := maildirNew(t, root, "alice")
	if len(got) != delivered {
		t.Errorf("alice/new holds %d messages, want the %d acknowledged", len(got), delivered)
	}
	for _, m := range got {
		if !strings.HasSuffix(m, message) {
			t.Errorf("partial message in alice/new (%d bytes)", len(m))
		}
	}
	if tmp, _ := os.ReadDir(filepath.Join(root, "alice", "Maildir", "tmp")); len(tmp) != 0 {
		t.Errorf("alice/tmp holds %d files", len(tmp))
	}
	if !strings.Contains(w.queueList(), "3 message(s)") {
		t.Errorf("queue list:\n%s", w.queueList())
	}

	// Space back: new mail is taken again and the queue drains.
	os.Remove(filler)
	deadline = time.Now().Add(10 * time.Second)
	for {
		err := send(w.smtp, "a@example.org", []string{"alice@example.test"}, message)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("space freed, still refused: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	mx := w.mx("127.0.0.2", smtptest.MXOptions{})
	w.facteur("queue", "--config", "facteur.toml", "flush")
	mx.Wait(t, 3, 20*time.Second)
	for _, m := range mx.Messages() {
		if !strings.HasSuffix(string(m.Data), queued) {
			t.Errorf("queued message arrived damaged (%d bytes)", len(m.Data))
		}
	}
	w.waitQueue(emptyQueue, "empty")
}
