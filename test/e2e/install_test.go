package e2e

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// install makes the instance's configuration the one sysBinary finds
// where make install puts it. The installed file's folder is a link to the
// instance's, so that its relative paths name the instance's files.
func (in *instance) install() {
	in.t.Helper()
	link := filepath.Dir(sysConf)
	if err := os.Symlink(in.dir, link); err != nil {
		in.t.Fatal(err)
	}
	in.t.Cleanup(func() { os.Remove(link) })
}

func assertEmpty(t *testing.T, dir string) {
	t.Helper()
	if ents, _ := os.ReadDir(dir); len(ents) > 0 {
		t.Errorf("%s got %v", dir, ents)
	}
}

// Cron's sendmail, and passwd and queue typed anywhere, use the installed
// configuration: not ./var or ./passwords of the folder they run in.
func TestToolsFindTheInstalledConfiguration(t *testing.T) {
	in := setup(t, "")
	in.install()
	cron := t.TempDir()
	if code, out := runIn(t, cron, sysBinary, "", "--help"); code != 0 || !strings.Contains(out, sysConf) {
		t.Errorf("--help does not name %s: exit %d\n%s", sysConf, code, out)
	}
	code, out := runIn(t, cron, sysBinary, "Subject: from cron\n\nhi\n", "sendmail", "alice@example.test")
	if code != 0 || !strings.Contains(out, filepath.Join(filepath.Dir(sysConf), "var", "maildrop")) {
		t.Fatalf("sendmail, server down: exit %d: %s", code, out)
	}
	if code, out := runIn(t, cron, sysBinary, "long enough\nlong enough\n", "passwd", "alice"); code != 0 {
		t.Fatalf("passwd: exit %d: %s", code, out)
	}
	if !strings.HasPrefix(readFile(t, filepath.Join(in.dir, "passwords")), "alice:$2") {
		t.Error("passwd did not write the installed passwords file")
	}
	in.start()
	if got := in.waitMail("alice", 1)[0]; !strings.Contains(got, "Subject: from cron") {
		t.Errorf("alice got:\n%s", got)
	}
	if code, out := runIn(t, cron, sysBinary, "", "queue", "list"); code != 0 || !strings.Contains(out, "queue is empty") {
		t.Errorf("queue list: exit %d: %s", code, out)
	}
	assertEmpty(t, cron)
}

// With no configuration at all, nothing is left where no server looks:
// sendmail says to try later (75), passwd refuses (78), and so does queue.
func TestNoConfigurationLeavesNothingInTheWorkingFolder(t *testing.T) {
	if c, err := net.Dial("tcp", "127.0.0.1:2587"); err == nil {
		c.Close()
		t.Skip("something listens on the default relay address 127.0.0.1:2587")
	}
	cron := t.TempDir()
	for _, tc := range []struct {
		input string
		args  []string
		code  int
		want  string
	}{
		{"Subject: lost?\n\nhi\n", []string{"sendmail", "alice@example.test"}, 75, "try again later"},
		{"long enough\nlong enough\n", []string{"passwd", "alice"}, 78, "give --config"},
		{"", []string{"queue", "list"}, 1, "give --config"},
		{"", nil, 0, "usage: facteur <command>"},
	} {
		code, out := runIn(t, cron, sysBinary, tc.input, tc.args...)
		if code != tc.code || !strings.Contains(out, tc.want) {
			t.Errorf("%q: exit %d, want %d and %q: %s", tc.args, code, tc.code, tc.want, out)
		}
	}
	assertEmpty(t, cron)
}
