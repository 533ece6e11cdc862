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
		"postmaster", "no mailbox at example.test", "sync", "filesystem: one syncfs", "dnsbl", "rspamd",
		"delivery", "into the Maildirs under maildir_root before the 250",
		"senders", "SPF, DKIM, DMARC checked on smtp/smtps: dmarc=enforce, authserv_id=mx.example.test"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	// The other way of syncing is named as such.
	cfg, err := os.ReadFile(filepath.Join(in.dir, "facteur.toml"))
	if err != nil {
		t.Fatal(err)
	}
	// The spam checks in force.
	in.writeFile("spam.toml", strings.Replace(string(cfg), "[listen]",
		"[inbound]\ndnsbl = [\"zen.example\", \"bl.example\"]\nrspamd = \"http://127.0.0.1:11333\"\n[listen]", 1))
	if code, out = in.runAs(binary, "", "check-config", "--config", "spam.toml"); code != 0 ||
		!strings.Contains(out, "zen.example, bl.example") || !strings.Contains(out, "http://127.0.0.1:11333, timeout 20s, on error accept") {
		t.Errorf("[inbound]: exit %d\n%s", code, out)
	}
	in.writeFile("nodmarc.toml", strings.Replace(string(cfg), "[listen]", "[inbound]\ndmarc = \"off\"\n[listen]", 1))
	if code, out = in.runAs(binary, "", "check-config", "--config", "nodmarc.toml"); code != 0 ||
		!strings.Contains(out, "SPF, DKIM checked on smtp/smtps: dmarc=off") {
		t.Errorf("dmarc = off: exit %d\n%s", code, out)
	}
	in.writeFile("lmtp.toml", strings.Replace(string(cfg), "[listen]", "[delivery]\nlmtp = \"unix:/run/dovecot/lmtp\"\n[listen]", 1))
	if code, out = in.runAs(binary, "", "check-config", "--config", "lmtp.toml"); code != 0 ||
		!strings.Contains(out, "queued, then over LMTP to unix:/run/dovecot/lmtp, recipients as mailbox names (alice)") {
		t.Errorf("[delivery] lmtp: exit %d\n%s", code, out)
	}
	in.writeFile("badlmtp.toml", strings.Replace(string(cfg), "[listen]", "[delivery]\nlmtp = \"/run/dovecot/lmtp\"\n[listen]", 1))
	if code, out = in.runAs(binary, "", "check-config", "--config", "badlmtp.toml"); code != 2 || !strings.Contains(out, "delivery.lmtp") {
		t.Errorf("[delivery] lmtp without unix: exit %d\n%s", code, out)
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
	// Every mistake of the configuration file, each with its line.
	in.writeFile("facteur.toml", "hostnme = \"mx.example.test\"\n[limits]\ntimeout = \"soon\"\nmax_recipients = 0\n")
	code, out = in.runAs(binary, "", "check-config", "--config", "facteur.toml")
	if code != 2 {
		t.Errorf("bad config: exit %d\n%s", code, out)
	}
	for _, want := range []string{"facteur.toml:1: hostnme: unknown key\n", `facteur.toml:3: limits.timeout: invalid duration "soon"`,
		"facteur.toml:4: limits.max_recipients: must be positive\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
