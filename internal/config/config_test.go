package config

import (
	"errors"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"facteur/internal/auth"
	"facteur/internal/durable"
)

func write(t *testing.T, body string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "facteur.toml")
	if err := os.WriteFile(f, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestDefaultsRunWithoutFile(t *testing.T) {
	c, err := Load("", Switches{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen.SMTP[0] != "127.0.0.1:2525" || c.Listen.SMTPS[0] != "127.0.0.1:4465" || c.Listen.Relay[0] != "127.0.0.1:2587" {
		t.Errorf("listeners: %+v", c.Listen)
	}
	if c.MaildirRoot != filepath.Join("var", "mail") || c.DataDir != "var" {
		t.Errorf("paths: data %q maildir %q", c.DataDir, c.MaildirRoot)
	}
	if c.Domains[0] != c.Hostname || c.Domains[1] != "localhost" {
		t.Errorf("domains: %v", c.Domains)
	}
	if c.SyncMode() != durable.Filesystem {
		t.Errorf("sync: %v, want filesystem", c.SyncMode())
	}
	if !c.Outbound.Pipelining {
		t.Error("outbound.pipelining is off by default")
	}
	if c.AliasesFile != "aliases" || c.RecipientDelimiter != "+" || c.SRS.SecretFile != filepath.Join("var", "srs.key") {
		t.Errorf("aliases %q, delimiter %q, srs key %q", c.AliasesFile, c.RecipientDelimiter, c.SRS.SecretFile)
	}
	if !c.RelayAllowed(netip.MustParseAddr("127.0.0.1")) || !c.RelayAllowed(netip.MustParseAddr("::1")) ||
		c.RelayAllowed(netip.MustParseAddr("192.0.2.1")) {
		t.Error("relay_networks default is not loopback")
	}
}

func TestFileOverridesDefaultsAndResolvesPaths(t *testing.T) {
	f := write(t, `
hostname = "MX.Example.Test."
domains = ["example.test"]
data_dir = "spool"
users_file = "/etc/facteur/users"
[listen]
smtp = [":25"]
[limits]
timeout = "30s"
max_recipients = 7
[outbound]
lifetime = "2d"
pipelining = false
`)
	c, err := Load(f, Switches{})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(f)
	switch {
	case c.Hostname != "mx.example.test":
		t.Errorf("hostname %q", c.Hostname)
	case c.DataDir != filepath.Join(dir, "spool") || c.MaildirRoot != filepath.Join(dir, "spool", "mail"):
		t.Errorf("paths %q %q", c.DataDir, c.MaildirRoot)
	case c.UsersFile != "/etc/facteur/users" || !c.Explicit("users_file") || c.Explicit("passwords_file"):
		t.Errorf("users_file %q", c.UsersFile)
	case c.Limits.Timeout.Duration != 30*time.Second || c.Limits.MaxRecipients != 7:
		t.Errorf("limits %+v", c.Limits)
	case c.Outbound.Lifetime.Duration != 48*time.Hour || c.Outbound.Pipelining:
		t.Errorf("outbound %+v", c.Outbound)
	case c.Listen.SMTPS[0] != "127.0.0.1:4465":
		t.Errorf("an unset key lost its default: %v", c.Listen.SMTPS)
	}
}

func TestErrorsNameTheKey(t *testing.T) {
	for body, want := range map[string]string{
		`bogus = 1`:                    ":1: bogus: unknown key",
		`- = "f.toml"`:                 ":1: -: unknown key",
		"[limits]\nmax_lines = 3":      ":2: limits.max_lines: unknown key",
		"[limits]\ntimeout = \"soon\"": "invalid duration",
		"[tls]\ncert = \"nope.pem\"\nkey = \"nope.key\"": "tls.cert",
		"[tls]\ncert = \"a.pem\"":                        "cert and key go together",
		"[listen]\nsmtp = [\"no-port\"]":                 "listen.smtp",
		"relay_networks = [\"10.0.0.0/33\"]":             "relay_networks",
		"[log]\nlevel = \"loud\"":                        "log.level",
		"[outbound]\ntls = \"maybe\"":                    "outbound.tls",
		"sync = \"never\"":                               "sync",
		"[limits]\nmax_line_bytes = 100":                 "limits.max_line_bytes",
		"[inbound]\ndmarc = \"maybe\"":                   "inbound.dmarc",
		"[inbound]\nauthserv_id = \"mx; dkim=pass\"":     "inbound.authserv_id",
		`hostname = 3`:                                   "hostname",
		"[inbound]\ndnsbl = [\"zen example\"]":           "inbound.dnsbl",
		"[inbound]\ndnsbl = [\"localhost\"]":             "inbound.dnsbl",
		"[inbound]\nrspamd = \"127.0.0.1:11333\"":        "inbound.rspamd",
		"[inbound]\nrspamd_on_error = \"drop\"":          "inbound.rspamd_on_error",
		"[inbound]\nrspamd_timeout = \"0s\"":             "inbound.rspamd_timeout",
		`recipient_delimiter = "++"`:                     "recipient_delimiter",
		`recipient_delimiter = "@"`:                      "recipient_delimiter",
		`aliases_file = ""`:                              "aliases_file",
		"[delivery]\nlmtp = \"/run/dovecot/lmtp\"":       "delivery.lmtp",
		"[delivery]\nlmtp = \"unix:lmtp\"":               "delivery.lmtp",
		"[delivery]\nlmtp_recipient = \"user\"":          "delivery.lmtp_recipient",
	} {
		_, err := Load(write(t, body), Switches{})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want an error naming %q", body, err, want)
		}
	}
}

func TestDeliveryKeys(t *testing.T) {
	c, err := Load(write(t, ``), Switches{})
	if err != nil || c.Delivery.LMTP != "" || c.Delivery.LMTPRecipient != "mailbox" {
		t.Fatalf("defaults: %+v, %v; want Maildirs, mailbox", c.Delivery, err)
	}
	for _, l := range []string{"unix:/run/dovecot/lmtp", "127.0.0.1:24", "[::1]:24"} {
		c, err := Load(write(t, "[delivery]\nlmtp = \""+l+"\"\nlmtp_recipient = \"address\""), Switches{})
		if err != nil || c.Delivery.LMTP != l || c.Delivery.LMTPRecipient != "address" {
			t.Errorf("%s: %+v, %v", l, c.Delivery, err)
		}
	}
}

func TestInboundDefaults(t *testing.T) {
	c, err := Load(write(t, `hostname = "MX.Example.org"`), Switches{})
	if err != nil {
		t.Fatal(err)
	}
	if !c.Inbound.CheckSenders || c.Inbound.AuthservID != "mx.example.org" || c.DMARCMode() != auth.Enforce {
		t.Errorf("authserv_id %q, dmarc %v; want the hostname and enforce", c.Inbound.AuthservID, c.DMARCMode())
	}
	c, err = Load(write(t, "[inbound]\nauthserv_id = \"filter.example.org\"\ndmarc = \"tag\""), Switches{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Inbound.AuthservID != "filter.example.org" || c.DMARCMode() != auth.Tag {
		t.Errorf("authserv_id %q, dmarc %v", c.Inbound.AuthservID, c.DMARCMode())
	}
}

// One run names every mistake of the file, each with its line, in the
// file's order: a fix-and-retry loop per mistake is tiresome.
func TestEveryProblemWithItsLine(t *testing.T) {
	f := write(t, `hostname = "mx.example.test"
colour = "blue"
[limits]
timeout = "soon"
max_recipients = "many"
max_line_bytes = 10
[outbound]
tls = "maybe"
lifetime = [1]
workres = 3
[listen]
smtp = "127.0.0.1:25"
`)
	_, err := Load(f, Switches{})
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("got %v, want Errors", err)
	}
	want := []string{
		":2: colour: unknown key",
		`:4: limits.timeout: invalid duration "soon"`,
		":5: limits.max_recipients: want an integer",
		":6: limits.max_line_bytes: must be at least 1000",
		`:8: outbound.tls: "maybe" is not one of`,
		":9: outbound.lifetime: want a string",
		":10: outbound.workres: unknown key",
		":12: listen.smtp: want an array of strings",
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != len(want) {
		t.Fatalf("%d problems, want %d:\n%v", len(lines), len(want), err)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], "config "+f) || !strings.Contains(lines[i], w) {
			t.Errorf("problem %d: %q, want %q", i+1, lines[i], w)
		}
	}
	// A syntax error stops the reading, at its line.
	_, err = Load(write(t, "hostname = \"a\"\ntimeout = 5m\n"), Switches{})
	if err == nil || !strings.Contains(err.Error(), "facteur.toml:2: ") {
		t.Errorf("syntax error: %v", err)
	}
}

func TestSwitchesOverrideFile(t *testing.T) {
	f := write(t, `
[listen]
smtp = ["0.0.0.0:25", "[::]:25"]
smtps = ["0.0.0.0:465"]
relay = ["0.0.0.0:587"]
[log]
level = "info"
`)
	var sw Switches
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	sw.Register(fs)
	if err := fs.Parse([]string{"-l", "-p", "2600", "-n", "3", "-j", "f.log", "-d", "maildirs", "-u", "u.txt"}); err != nil {
		t.Fatal(err)
	}
	c, err := Load(f, sw)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.Listen.SMTP, " ") != "127.0.0.1:2600" || c.Listen.SMTPS[0] != "127.0.0.1:465" || c.Listen.Relay[0] != "127.0.0.1:587" {
		t.Errorf("-l -p: %+v", c.Listen)
	}
	if c.Log.Level != "3" || c.Log.File != "f.log" || c.MaildirRoot != "maildirs" || c.UsersFile != "u.txt" || !c.Explicit("users_file") {
		t.Errorf("-n -j -d -u: %+v %q %q", c.Log, c.MaildirRoot, c.UsersFile)
	}
	if lvl, _ := ParseLevel(c.Log.Level); lvl.String() != "DEBUG" {
		t.Errorf("-n 3 is %v", lvl)
	}
}

func TestInterfaceSwitch(t *testing.T) {
	c, err := Load("", Switches{Iface: "lo"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(c.Listen.SMTP, " "), "127.0.0.1:2525") {
		t.Errorf("-i lo: %v", c.Listen.SMTP)
	}
	if _, err := Load("", Switches{Iface: "no-such-if0"}); err == nil || !strings.Contains(err.Error(), "-i no-such-if0") {
		t.Errorf("unknown interface: %v", err)
	}
	if _, err := Load("", Switches{LogLevel: "7"}); err == nil || !strings.Contains(err.Error(), "-n") {
		t.Errorf("bad -n: %v", err)
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{"5m": 5 * time.Minute, "5d": 120 * time.Hour, "0.5d": 12 * time.Hour, "90s": 90 * time.Second} {
		if got, err := ParseDuration(in); err != nil || got != want {
			t.Errorf("%s: %v %v", in, got, err)
		}
	}
	for _, in := range []string{"", "d", "-1d", "-5m", "xd"} {
		if _, err := ParseDuration(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

func TestExampleConfigLoads(t *testing.T) {
	c, err := Load("../../facteur.example.toml", Switches{})
	if err != nil {
		t.Fatalf("the shipped example does not load: %v", err)
	}
	if c.Hostname != "mx.example.org" || c.Listen.SMTP[0] != ":25" || c.Outbound.Lifetime.Duration != 5*24*time.Hour {
		t.Errorf("example read wrong: %+v", c)
	}
}

func TestReloadedTakesLiveSettingsAndNamesTheOthers(t *testing.T) {
	dir := t.TempDir()
	load := func(body string) *Config {
		t.Helper()
		f := filepath.Join(dir, "facteur.toml")
		if err := os.WriteFile(f, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := Load(f, Switches{})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	old := load("hostname = \"mx.example.org\"\ndomains = [\"example.org\"]\n")
	n := load(`hostname = "mx.example.org"
domains = ["example.org", "example.net"]
users_file = "other-users"
relay_networks = ["192.0.2.0/24"]
[log]
level = "debug"
[limits]
max_recipients = 5
timeout = "1m"
[listen]
smtp = ["127.0.0.1:25"]
`)
	got, later := old.Reloaded(n)
	if strings.Join(got.Domains, ",") != "example.org,example.net" || got.UsersFile != filepath.Join(dir, "other-users") ||
		got.Log.Level != "debug" || !got.Explicit("users_file") {
		t.Errorf("live settings not taken: domains %v, users_file %q, log %+v", got.Domains, got.UsersFile, got.Log)
	}
	if !got.RelayAllowed(netip.MustParseAddr("192.0.2.7")) || got.RelayAllowed(netip.MustParseAddr("127.0.0.1")) {
		t.Error("relay_networks not taken")
	}
	if got.Limits.MaxRecipients != old.Limits.MaxRecipients || got.Listen.SMTP[0] != old.Listen.SMTP[0] {
		t.Errorf("a setting that needs a restart changed: limits %+v, listen %v", got.Limits, got.Listen.SMTP)
	}
	// The keys themselves, not their sections: what the operator edited.
	if want := "listen.smtp,limits.max_recipients,limits.timeout"; strings.Join(later, ",") != want {
		t.Errorf("reported for the next start: %v, want %s", later, want)
	}
	if old.Log.Level != "info" || old.RelayAllowed(netip.MustParseAddr("192.0.2.7")) {
		t.Error("Reloaded changed the configuration in force")
	}
}

// Every key of the file is either taken by a reload or reported as waiting
// for a restart: a new setting cannot be forgotten silently.
func TestReloadedAccountsForEveryKey(t *testing.T) {
	base, err := Load("", Switches{})
	if err != nil {
		t.Fatal(err)
	}
	typ := reflect.TypeFor[Config]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		key, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if key == "" || key == "-" {
			continue
		}
		n := *base
		n.Domains = slices.Clone(base.Domains)
		v := reflect.ValueOf(&n).Elem().Field(i)
		v.Set(changed(t, v))
		got, later := base.Reloaded(&n)
		applied := reflect.DeepEqual(reflect.ValueOf(got).Elem().Field(i).Interface(), v.Interface())
		reported := slices.ContainsFunc(later, func(k string) bool { return k == key || strings.HasPrefix(k, key+".") })
		if applied == reported {
			t.Errorf("%s: applied %v, reported for the next start %v: want exactly one", key, applied, reported)
		}
	}
}

// changed returns a value of v's type that differs from v.
func changed(t *testing.T, v reflect.Value) reflect.Value {
	c := reflect.New(v.Type()).Elem()
	c.Set(v)
	switch v.Kind() {
	case reflect.String:
		c.SetString(v.String() + "x")
	case reflect.Bool:
		c.SetBool(!v.Bool())
	case reflect.Int, reflect.Int64:
		c.SetInt(v.Int() + 1)
	case reflect.Slice:
		c.Set(reflect.Append(reflect.AppendSlice(reflect.MakeSlice(v.Type(), 0, v.Len()+1), v), reflect.ValueOf("x")))
	case reflect.Struct:
		c.Field(0).Set(changed(t, v.Field(0)))
	default:
		t.Fatalf("no way to change a %s", v.Type())
	}
	return c
}

func TestDNSKeyAndItsOlderName(t *testing.T) {
	c, err := Load(write(t, "dns = \"127.0.0.1:5353\""), Switches{})
	if err != nil || c.DNS != "127.0.0.1:5353" || len(c.Warnings()) != 0 {
		t.Fatalf("dns: %+v, %v, warnings %q", c, err, c.Warnings())
	}
	c, err = Load(write(t, "[outbound]\ndns = \"127.0.0.1:5353\""), Switches{})
	if err != nil || c.DNS != "127.0.0.1:5353" {
		t.Fatalf("outbound.dns alone: dns %q, %v; want it taken as dns", c.DNS, err)
	}
	if w := c.Warnings(); len(w) != 1 || !strings.Contains(w[0], "top-level key dns") {
		t.Errorf("outbound.dns alone: warnings %q, want one naming the new key", w)
	}
	if _, err := Load(write(t, "dns = \"127.0.0.1:53\"\n[outbound]\ndns = \"127.0.0.1:53\""), Switches{}); err != nil {
		t.Errorf("both keys, same value: %v", err)
	}
	if _, err := Load(write(t, "dns = \"127.0.0.1:53\"\n[outbound]\ndns = \"127.0.0.2:53\""), Switches{}); err == nil || !strings.Contains(err.Error(), "disagree") {
		t.Errorf("both keys, different values: %v, want an error", err)
	}
}

func TestInbound(t *testing.T) {
	c, err := Load(write(t, "[inbound]\ndnsbl = [\"Zen.Spamhaus.org.\", \"bl.example\"]"), Switches{})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"zen.spamhaus.org", "bl.example"}; !slices.Equal(c.Inbound.DNSBL, want) {
		t.Errorf("inbound.dnsbl = %q, want %q", c.Inbound.DNSBL, want)
	}
	d, _ := Load("", Switches{})
	if len(d.Inbound.DNSBL) != 0 || d.Inbound.Rspamd != "" || d.Inbound.RspamdOnError != "accept" ||
		d.Inbound.RspamdTimeout.Duration != 20*time.Second {
		t.Errorf("[inbound] by default = %+v, want no lists, no rspamd, 20s, accept", d.Inbound)
	}
}
