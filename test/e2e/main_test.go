// Package e2e runs the real facteur binary with throwaway configurations
// and talks to it over real sockets, as a user or a peer would.
package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"facteur/internal/smtptest"
)

var (
	binary string
	// sysBinary is facteur built to find its installed configuration at
	// sysConf rather than in /etc/facteur, where tests must not write.
	sysBinary, sysConf string
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "facteur-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "facteur")
	sysBinary, sysConf = filepath.Join(dir, "facteur-sys"), filepath.Join(dir, "etc", "facteur.toml")
	for _, args := range [][]string{
		{"-o", binary},
		{"-ldflags", "-X facteur/internal/config.systemFile=" + sysConf, "-o", sysBinary},
	} {
		build := exec.Command("go", append(append([]string{"build"}, args...), "facteur/cmd/facteur")...)
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "building facteur:", err)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// freePort returns a TCP port that was free on 127.0.0.1 a moment ago.
func freePort(t *testing.T) int { return smtptest.FreePortOn(t, "127.0.0.1") }

// instance is one running facteur process.
type instance struct {
	t       *testing.T
	dir     string
	cmd     *exec.Cmd
	out     *smtptest.Buffer // stderr and stdout
	smtp    string
	smtps   string
	relay   string
	submit  string
	exited  chan struct{}
	waitErr error
}

// setup writes a config (extra TOML appended) and a users file in a fresh
// folder; start runs the binary on it.
func setup(t *testing.T, extra string) *instance {
	t.Helper()
	dir := t.TempDir()
	in := &instance{t: t, dir: dir,
		smtp:   fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		smtps:  fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		relay:  fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		submit: fmt.Sprintf("127.0.0.1:%d", freePort(t)),
	}
	// The checks of inbound mail ask the DNS: each instance gets a DNS of
	// its own, empty unless the test brings one, so that no test depends
	// on the machine's resolver.
	own := ""
	if !strings.HasPrefix(extra, "dns = ") {
		own = fmt.Sprintf("dns = %q\n", smtptest.NewDNS(t).Addr())
	}
	cfg := own + fmt.Sprintf(`hostname = "mx.example.test"
domains = ["example.test"]
data_dir = "var"
users_file = "users"
run_as_root = true # CI runs as root; privileges_test.go covers the switch
%s
[listen]
smtp = [%q]
smtps = [%q]
relay = [%q]
submission = [%q]
`, extra, in.smtp, in.smtps, in.relay, in.submit)
	in.writeFile("facteur.toml", cfg)
	in.writeFile("users", "alice\nbob@example.test robert\n")
	return in
}

func (in *instance) writeFile(name, content string) {
	in.t.Helper()
	if err := os.WriteFile(filepath.Join(in.dir, name), []byte(content), 0o600); err != nil {
		in.t.Fatal(err)
	}
}

// start runs `facteur serve --config facteur.toml args...` in the folder
// and waits until the smtp listener answers.
func (in *instance) start(args ...string) {
	in.t.Helper()
	in.run(append([]string{"serve", "--config", "facteur.toml"}, args...)...)
	in.waitListening(in.smtp)
}

func (in *instance) run(args ...string) {
	in.t.Helper()
	in.out = &smtptest.Buffer{}
	in.cmd = exec.Command(binary, args...)
	in.cmd.Dir = in.dir
	in.cmd.Stdout, in.cmd.Stderr = in.out, in.out
	if err := in.cmd.Start(); err != nil {
		in.t.Fatal(err)
	}
	in.exited = make(chan struct{})
	go func() { in.waitErr = in.cmd.Wait(); close(in.exited) }()
	in.t.Cleanup(func() {
		in.cmd.Process.Kill()
		<-in.exited
		if in.t.Failed() {
			in.t.Logf("facteur output:\n%s", in.out.String())
		}
	})
}

func (in *instance) waitListening(addr string) {
	in.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-in.exited:
			in.t.Fatalf("facteur exited before listening on %s: %v\n%s", addr, in.waitErr, in.out.String())
		default:
		}
		if time.Now().After(deadline) {
			in.t.Fatalf("facteur not listening on %s after 20s\n%s", addr, in.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop sends sig and returns the exit status.
func (in *instance) stop(sig syscall.Signal) int {
	in.t.Helper()
	in.cmd.Process.Signal(sig)
	select {
	case <-in.exited:
	case <-time.After(30 * time.Second):
		in.t.Fatalf("facteur did not exit within 30s of %v", sig)
	}
	return in.cmd.ProcessState.ExitCode()
}

// maildirNew lists the messages in a mailbox's new/ under root.
func maildirNew(t *testing.T, root, mailbox string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(root, mailbox, "Maildir", "new"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(root, mailbox, "Maildir", "new", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(b))
	}
	return out
}

// send delivers one message over plain SMTP with go-smtp's client.
func send(addr, from string, to []string, body string) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello("client.example.org"); err != nil {
		return err
	}
	if err := c.SendMail(from, to, strings.NewReader(body)); err != nil {
		return err
	}
	return c.Quit()
}

const message = "From: <a@example.org>\r\nTo: <alice@example.test>\r\nSubject: e2e\r\n\r\nHello from the e2e test.\r\n"

func itoa(n int) string { return strconv.Itoa(n) }

// waitLog waits until facteur's output holds s.
func waitLog(t *testing.T, in *instance, s string) {
	t.Helper()
	waitText(t, in.out.String, s)
}

// waitText waits until text() holds s.
func waitText(t *testing.T, text func() string, s string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(text(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("log never said %q", s)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
