package e2e

import (
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// Started as root, facteur binds its ports, gives its directories to the
// configured user and becomes it; what it writes is 0600 in 0700 folders.
func TestDropsRootAfterBinding(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (CI runs as root)")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody")
	}
	uid, _ := strconv.Atoi(nobody.Uid)
	in := setup(t, "")
	// nobody must be able to reach data_dir.
	for _, d := range []string{filepath.Dir(in.dir), in.dir} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	cfg, _ := os.ReadFile(filepath.Join(in.dir, "facteur.toml"))
	in.writeFile("facteur.toml", strings.Replace(string(cfg), "run_as_root = true", `user = "nobody"`, 1))
	in.start()
	// The port answers once bound, which is before the switch: the
	// start-up line comes after it.
	waitLog(t, in, "facteur started")

	status, err := os.ReadFile("/proc/" + strconv.Itoa(in.cmd.Process.Pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if f := strings.Fields(line); len(f) == 5 && (f[0] == "Uid:" || f[0] == "Gid:") {
			want := nobody.Uid
			if f[0] == "Gid:" {
				want = nobody.Gid
			}
			for _, id := range f[1:] { // real, effective, saved, filesystem
				if id != want {
					t.Errorf("%s, want %s everywhere", line, want)
				}
			}
		}
	}
	if err := send(in.smtp, "a@example.org", []string{"alice@example.test"}, message); err != nil {
		t.Fatal(err)
	}
	if got := maildirNew(t, filepath.Join(in.dir, "var", "mail"), "alice"); len(got) != 1 {
		t.Fatalf("alice has %d messages", len(got))
	}
	// Everything under data_dir belongs to nobody: files 0600 (the control
	// socket too), directories 0700.
	filepath.WalkDir(filepath.Join(in.dir, "var"), func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			t.Error(err)
			return nil
		}
		info, _ := de.Info()
		want := fs.FileMode(0o600)
		if de.IsDir() {
			want = 0o700
		}
		if info.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", p, info.Mode().Perm(), want)
		}
		if st := info.Sys().(*syscall.Stat_t); int(st.Uid) != uid {
			t.Errorf("%s: owner %d, want nobody (%d)", p, st.Uid, uid)
		}
		return nil
	})
}

// As root with no account to become, facteur refuses to start.
func TestRootWithoutUserRefusesToStart(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (CI runs as root)")
	}
	in := setup(t, "")
	cfg, _ := os.ReadFile(filepath.Join(in.dir, "facteur.toml"))
	in.writeFile("facteur.toml", strings.Replace(string(cfg), "run_as_root = true", `user = "no-such-user-e2e"`, 1))
	assertExit2(t, in, "run_as_root = true", "serve", "--config", "facteur.toml")
	if _, err := os.Stat(filepath.Join(in.dir, "var")); err == nil {
		t.Error("data_dir created before refusing to start")
	}
}
