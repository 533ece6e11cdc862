package e2e

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/emersion/go-smtp"
)

func TestServeDeliversAndStopsCleanly(t *testing.T) {
	in := setup(t, "")
	in.start()
	if err := send(in.smtp, "a@example.org", []string{"alice@example.test", "bob@example.test"}, message); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(in.dir, "var", "mail")
	for mb, rcpt := range map[string]string{"alice": "alice@example.test", "robert": "bob@example.test"} {
		got := maildirNew(t, root, mb)
		// The verdicts first (RFC 8601 5), then the trace headers.
		if len(got) != 1 || !strings.HasSuffix(got[0], "\r\n"+message) ||
			!strings.HasPrefix(got[0], "Authentication-Results: mx.example.test;\r\n\tspf=none ") ||
			!strings.Contains(got[0], "\r\nReturn-Path: <a@example.org>\r\nDelivered-To: "+rcpt+"\r\nReceived: from client.example.org") {
			t.Fatalf("%s: %q", mb, got)
		}
	}
	if _, err := os.Stat(filepath.Join(in.dir, "var", "tls", "cert.pem")); err != nil {
		t.Errorf("no self-signed certificate generated: %v", err)
	}
	if code := in.stop(syscall.SIGTERM); code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0", code)
	}
	log := in.out.String()
	for _, want := range []string{"facteur started", "connection opened", "message accepted", "rcpts=alice@example.test,bob@example.test", "connection closed", "stopping", "stopped"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q", want)
		}
	}
}

func TestUnknownUserAndRelayRefused(t *testing.T) {
	in := setup(t, "")
	in.start()
	var se *smtp.SMTPError
	err := send(in.smtp, "a@example.org", []string{"nobody@example.test"}, message)
	if !errors.As(err, &se) || se.Code != 550 || se.EnhancedCode != (smtp.EnhancedCode{5, 1, 1}) {
		t.Errorf("unknown user: %v", err)
	}
	err = send(in.smtp, "a@example.org", []string{"victim@elsewhere.org"}, message)
	if !errors.As(err, &se) || se.Code != 550 || se.EnhancedCode != (smtp.EnhancedCode{5, 7, 1}) {
		t.Errorf("relay: %v", err)
	}
}

func TestSIGHUPReloadsUsers(t *testing.T) {
	in := setup(t, "")
	in.start()
	if err := send(in.smtp, "a@example.org", []string{"carol@example.test"}, message); err == nil {
		t.Fatal("carol accepted before she exists")
	}
	held, err := smtp.Dial(in.smtp) // a session open across the reload
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if err := held.Hello("c"); err != nil {
		t.Fatal(err)
	}
	in.writeFile("users", "alice\ncarol\n")
	in.cmd.Process.Signal(syscall.SIGHUP)
	waitLog(t, in, `msg="reload: users map" because=SIGHUP`)
	if err := send(in.smtp, "a@example.org", []string{"carol@example.test"}, message); err != nil {
		t.Fatalf("carol refused after SIGHUP: %v", err)
	}
	if err := held.SendMail("a@example.org", []string{"carol@example.test"}, strings.NewReader(message)); err != nil {
		t.Fatalf("the session held open across the reload: %v", err)
	}
	// A broken file keeps the map in force.
	in.writeFile("users", "carol ../escape\n")
	in.cmd.Process.Signal(syscall.SIGHUP)
	waitLog(t, in, `msg="reload: users map kept" because=SIGHUP`)
	if err := send(in.smtp, "a@example.org", []string{"carol@example.test"}, message); err != nil {
		t.Fatalf("a bad users file dropped the old map: %v", err)
	}
}

// The users and passwords files are read again when they change, with no
// signal: under `go run`, the PID at hand is not facteur's.
func TestUsersFileChangeTakesEffectWithoutSignal(t *testing.T) {
	in := setup(t, "")
	in.start()
	if err := send(in.smtp, "a@example.org", []string{"carol@example.test"}, message); err == nil {
		t.Fatal("carol accepted before she exists")
	}
	in.writeFile("users", "alice\ncarol\n")
	waitLog(t, in, `msg="reload: users map" because="file changed" file=users entries_before=2 entries=2`)
	if err := send(in.smtp, "a@example.org", []string{"carol@example.test"}, message); err != nil {
		t.Fatalf("carol refused after the users file changed: %v", err)
	}
	if got := maildirNew(t, filepath.Join(in.dir, "var", "mail"), "carol"); len(got) != 1 {
		t.Errorf("carol has %d messages", len(got))
	}
	in.setPassword("carol", "correct horse")
	waitLog(t, in, `msg="reload: passwords" because="file changed" file=passwords accounts=1`)
	// A broken edit keeps the map in force.
	in.writeFile("users", "carol ../escape\n")
	waitLog(t, in, `msg="reload: users map kept" because="file changed"`)
	if err := send(in.smtp, "a@example.org", []string{"carol@example.test"}, message); err != nil {
		t.Fatalf("a bad users file dropped the old map: %v", err)
	}
}

func TestSIGHUPReloadsConfigurationAndReopensLog(t *testing.T) {
	in := setup(t, "[log]\nfile = \"facteur.log\"\n")
	in.start()
	logFile := filepath.Join(in.dir, "facteur.log")
	fileLog := func() string { b, _ := os.ReadFile(logFile); return string(b) }
	var se *smtp.SMTPError
	if err := send(in.smtp, "a@example.org", []string{"carol@other.test"}, message); !errors.As(err, &se) || se.Code != 550 {
		t.Fatalf("carol@other.test before other.test is local: %v", err)
	}
	// What logrotate does, while the operator adds a domain and, by
	// mistake, moves the smtp listener.
	if err := os.Rename(logFile, logFile+".1"); err != nil {
		t.Fatal(err)
	}
	cfg := readFile(t, filepath.Join(in.dir, "facteur.toml"))
	edited := strings.Replace(cfg, `domains = ["example.test"]`, `domains = ["example.test", "other.test"]`, 1)
	edited = strings.Replace(edited, in.smtp, "127.0.0.1:"+itoa(freePort(t)), 1)
	if edited == cfg {
		t.Fatal("the test's edit of facteur.toml changed nothing")
	}
	in.writeFile("facteur.toml", edited)
	in.writeFile("users", "alice\nbob@example.test robert\ncarol@other.test carol\n")
	in.cmd.Process.Signal(syscall.SIGHUP)
	waitText(t, fileLog, "reload: users map")
	if err := send(in.smtp, "a@example.org", []string{"carol@other.test"}, message); err != nil {
		t.Fatalf("carol@other.test after the reload: %v", err)
	}
	if got := maildirNew(t, filepath.Join(in.dir, "var", "mail"), "carol"); len(got) != 1 {
		t.Errorf("carol has %d messages", len(got))
	}
	log := fileLog()
	if !strings.Contains(log, "domains=example.test,other.test") || !strings.Contains(log, `keys=listen.smtp`) {
		t.Errorf("the reopened log does not tell what the reload did:\n%s", log)
	}
	// The users file changed too: a check of the files may have reloaded
	// it into the old log before the signal came.
	if old := readFile(t, logFile+".1"); !strings.Contains(old, "facteur started") || strings.Contains(old, "because=SIGHUP") {
		t.Errorf("the rotated log holds:\n%s", old)
	}

	// A broken file keeps the configuration in force.
	in.writeFile("facteur.toml", edited+"\n[limits\n")
	in.cmd.Process.Signal(syscall.SIGHUP)
	waitText(t, fileLog, "reload: configuration kept")
	if err := send(in.smtp, "a@example.org", []string{"carol@other.test"}, message); err != nil {
		t.Fatalf("a broken configuration dropped other.test: %v", err)
	}
}

func TestSwitches(t *testing.T) {
	in := setup(t, "")
	port := freePort(t)
	in.smtp = "127.0.0.1:" + itoa(port)
	in.writeFile("others", "dave\n")
	in.start("-p", itoa(port), "-d", "boxes", "-u", "others", "-j", "facteur.log", "-n", "3", "-l")
	if err := send(in.smtp, "a@example.org", []string{"dave@example.test"}, message); err != nil {
		t.Fatal(err)
	}
	if got := maildirNew(t, filepath.Join(in.dir, "boxes"), "dave"); len(got) != 1 {
		t.Errorf("-d boxes: %d messages for dave", len(got))
	}
	if err := send(in.smtp, "a@example.org", []string{"alice@example.test"}, message); err == nil {
		t.Error("-u others: alice (only in the config's users file) still accepted")
	}
	in.stop(syscall.SIGTERM)
	log, err := os.ReadFile(filepath.Join(in.dir, "facteur.log"))
	if err != nil {
		t.Fatalf("-j: %v", err)
	}
	if !strings.Contains(string(log), "message accepted") || !strings.Contains(string(log), "level=DEBUG") && !strings.Contains(string(log), "level=INFO") {
		t.Errorf("-j facteur.log holds:\n%s", log)
	}

	// -n 0: errors only, so no "started" line.
	in2 := setup(t, "")
	in2.start("-j", "quiet.log", "-n", "0")
	in2.stop(syscall.SIGTERM)
	if log, _ := os.ReadFile(filepath.Join(in2.dir, "quiet.log")); strings.Contains(string(log), "facteur started") {
		t.Errorf("-n 0 still logs info lines:\n%s", log)
	}
}

func TestBadConfigExitsTwoNamingTheProblem(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for name, tc := range map[string]struct {
		extra string
		args  []string
		want  string
	}{
		"unknown key":    {"[limits]\nmax_lines = 3\n", nil, "limits.max_lines: unknown key"},
		"bad duration":   {"[limits]\ntimeout = \"soon\"\n", nil, "invalid duration"},
		"missing cert":   {"[tls]\ncert = \"none.pem\"\nkey = \"none.key\"\n", nil, "tls.key"},
		"bad users file": {"", []string{"-u", "broken"}, "users_file: broken:1: "}, // each layer names itself once
		"missing users":  {"", []string{"-u", "absent"}, "users_file: open absent: "},
		"bad switch":     {"", []string{"-n", "9"}, "-n"},
	} {
		t.Run(name, func(t *testing.T) {
			in := setup(t, tc.extra)
			in.writeFile("broken", "x/y\n")
			assertExit2(t, in, tc.want, append([]string{"serve", "--config", "facteur.toml"}, tc.args...)...)
		})
	}
	t.Run("port in use", func(t *testing.T) {
		in := setup(t, "")
		addr := busy.Addr().String()
		cfg, _ := os.ReadFile(filepath.Join(in.dir, "facteur.toml"))
		in.writeFile("facteur.toml", strings.Replace(string(cfg), in.smtps, addr, 1))
		assertExit2(t, in, "listen smtps "+addr, "serve", "--config", "facteur.toml")
	})
}

func assertExit2(t *testing.T, in *instance, want string, args ...string) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Dir = in.dir
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Fatalf("exit: %v, want status 2; output:\n%s", err, out)
	}
	last := strings.TrimSpace(string(out))
	if i := strings.LastIndexByte(last, '\n'); i >= 0 {
		last = last[i+1:]
	}
	if !strings.HasPrefix(last, "facteur: ") || !strings.Contains(last, want) {
		t.Errorf("last line %q does not name %q", last, want)
	}
}
