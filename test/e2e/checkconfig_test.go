package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckConfig(t *testing.T) {
	in := setup(t, "")
	code, out := in.runAs(binary, "", "check-config", "--config", "facteur.toml")
	if code != 0 {
		t.Fatalf("good config: exit %d\n%s", code, out)
	}
	for _, want := range []string{"hostname", "mx.example.test", "users", ": 2 entries", "listen smtps", in.smtps,
		"self-signed, made at first start", "tls=opportunistic", "passwords", "missing, so AUTH refuses",
		"postmaster", "no mailbox at example.test", "sync", "filesystem: one syncfs"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	// The other way of syncing is named as such.
	cfg, err := os.ReadFile(filepath.Join(in.dir, "facteur.toml"))
	if err != nil {
		t.Fatal(err)
	}
	in.writeFile("file.toml", "sync = \"file\"\n"+string(cfg))
	if code, out = in.runAs(binary, "", "check-config", "--config", "file.toml"); code != 0 ||
		!strings.Contains(out, "file: fsync of each file and its directory") {
		t.Errorf("sync = file: exit %d\n%s", code, out)
	}

	in.start() // makes the self-signed pair
	waitLog(t, in, "no mailbox for postmaster")
	in.writeFile("users", "alice\npostmaster alice\n")
	if code, out = in.runAs(binary, "", "check-config", "--config", "facteur.toml"); code != 0 ||
		!strings.Contains(out, `subject "mx.example.test"`) || strings.Contains(out, "postmaster") {
		t.Errorf("after first start, with a postmaster: exit %d\n%s", code, out)
	}

	// Each kind of bad file is reported, all of them at once, exit 2.
	in.writeFile("users", "../escape\n")
	in.writeFile("passwords", "alice:not-a-hash\n")
	in.writeFile("var/tls/cert.pem", "garbage")
	code, out = in.runAs(binary, "", "check-config", "--config", "facteur.toml")
	if code != 2 {
		t.Fatalf("bad files: exit %d\n%s", code, out)
	}
	for _, want := range []string{"users_file:", "users:1", "passwords_file:", "not bcrypt", "tls: load"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// A broken configuration file stops at once.
	in.writeFile("facteur.toml", "[limits]\ntimeout = \"soon\"\n")
	if code, out = in.runAs(binary, "", "check-config", "--config", "facteur.toml"); code != 2 || !strings.Contains(out, "invalid duration") {
		t.Errorf("bad config: exit %d\n%s", code, out)
	}
}
