package e2e

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The files the repository ships (Makefile, systemd unit, example
// configuration, .gitignore) must agree with each other: a user follows
// each to the letter.

// repoRoot is the top of the checkout these tests run in.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// unitSettings reads the Key=value lines of a systemd unit.
func unitSettings(unit string) map[string][]string {
	out := map[string][]string{}
	for _, line := range strings.Split(unit, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok && !strings.HasPrefix(k, "#") {
			out[k] = append(out[k], v)
		}
	}
	return out
}

// Under ProtectSystem=strict only the listed paths are writable: the log
// file the example configuration offers must be one of them.
func TestSystemdUnitLetsFacteurWriteItsLogFile(t *testing.T) {
	root := repoRoot(t)
	unit := unitSettings(readFile(t, filepath.Join(root, "contrib", "facteur.service")))
	if got := unit["ProtectSystem"]; len(got) != 1 || got[0] != "strict" {
		t.Fatalf("ProtectSystem = %v; this test assumes strict", got)
	}
	const logFile = "/var/log/facteur/facteur.log"
	if !strings.Contains(readFile(t, filepath.Join(root, "facteur.example.toml")), logFile) {
		t.Errorf("facteur.example.toml does not offer %s", logFile)
	}
	if got := unit["LogsDirectory"]; len(got) != 1 || got[0] != "facteur" {
		t.Errorf("LogsDirectory = %v, want facteur (/var/log/facteur writable by the service)", got)
	}
}

// `make install` installs what the unit names (the binary it starts, the
// documentation it points to), and uses ./facteur as built by the user
// when it is up to date: root under sudo often has no Go.
func TestMakeInstallProvidesWhatTheUnitNamesWithoutGo(t *testing.T) {
	makeBin, err := exec.LookPath("make")
	if err != nil {
		t.Skip("no make")
	}
	findBin, err := exec.LookPath("find")
	if err != nil {
		t.Skip("no find")
	}
	root := repoRoot(t)
	tree := t.TempDir()
	for _, name := range []string{"cmd", "internal", "contrib", "docs"} {
		if err := os.CopyFS(filepath.Join(tree, name), os.DirFS(filepath.Join(root, name))); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"Makefile", "go.mod", "go.sum", "README.md", "facteur.example.toml"} {
		if err := os.WriteFile(filepath.Join(tree, name), []byte(readFile(t, filepath.Join(root, name))), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A PATH with find for the Makefile's source list, and no go.
	bin := t.TempDir()
	if err := os.Symlink(findBin, filepath.Join(bin, "find")); err != nil {
		t.Fatal(err)
	}
	runMake := func(args ...string) (string, error) {
		cmd := exec.Command(makeBin, args...)
		cmd.Dir = tree
		cmd.Env = []string{"PATH=" + bin, "HOME=" + tree}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	out, err := runMake("facteur")
	if err == nil || !strings.Contains(out, "run 'make build' as yourself first, then 'sudo make install'") {
		t.Errorf("no binary and no go: %v\n%s", err, out)
	}

	// Built by the user a moment ago.
	binary := filepath.Join(tree, "facteur")
	if err := os.WriteFile(binary, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(binary, later, later); err != nil {
		t.Fatal(err)
	}
	dest := t.TempDir()
	out, err = runMake("-n", "install", "DESTDIR="+dest)
	if err != nil || strings.Contains(out, "go build") {
		t.Fatalf("make -n install with ./facteur up to date: %v\n%s", err, out)
	}
	unit := unitSettings(readFile(t, filepath.Join(root, "contrib", "facteur.service")))
	started, _, _ := strings.Cut(unit["ExecStart"][0], " ")
	doc, ok := strings.CutPrefix(unit["Documentation"][0], "file://")
	if !ok {
		t.Fatalf("Documentation=%s is not a file", unit["Documentation"][0])
	}
	for _, path := range []string{started, doc} {
		if !strings.Contains(out, " "+dest+path+"\n") {
			t.Errorf("make install does not install %s, which the unit names:\n%s", path, out)
		}
	}
}

// The example configuration tells how to check a change: with the command
// made for it, not by starting a server.
func TestExampleConfigurationSaysHowToCheckIt(t *testing.T) {
	example := readFile(t, filepath.Join(repoRoot(t), "facteur.example.toml"))
	header, _, _ := strings.Cut(example, "\n\n")
	if !strings.Contains(header, "`facteur check-config") || strings.Contains(header, "facteur serve") {
		t.Errorf("the header of facteur.example.toml:\n%s", header)
	}
}

// The quick example writes facteur.toml, users and passwords in the
// repository root; git must not offer them for a commit, and the anchored
// patterns must not hide the packages of the same names.
func TestQuickExampleFilesAreIgnored(t *testing.T) {
	root := repoRoot(t)
	if err := exec.Command("git", "-C", root, "rev-parse", "--is-inside-work-tree").Run(); err != nil {
		t.Skip("not a git checkout")
	}
	ignored := func(path string) bool {
		return exec.Command("git", "-C", root, "check-ignore", "-q", path).Run() == nil
	}
	for _, name := range []string{"facteur.toml", "users", "passwords", "facteur", "var/queue"} {
		if !ignored(name) {
			t.Errorf("%s is not ignored", name)
		}
	}
	for _, name := range []string{"internal/users/users.go", "internal/passwd/passwd.go", "cmd/facteur/main.go", "facteur.example.toml"} {
		if ignored(name) {
			t.Errorf("%s is ignored", name)
		}
	}
}
