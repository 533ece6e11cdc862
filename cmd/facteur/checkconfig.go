package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"text/tabwriter"

	"facteur/internal/aliases"
	"facteur/internal/auth"
	"facteur/internal/config"
	"facteur/internal/dkim"
	"facteur/internal/durable"
	"facteur/internal/passwd"
	"facteur/internal/tlsconf"
	"facteur/internal/users"
)

const checkConfigUsage = `usage: facteur check-config [--config FILE] [serve's flags]

Loads the configuration, the users map, the passwords and the certificate
as serve would, changes nothing, and prints the settings in force, or every
problem found, each with its line (exit status 2).

flags:
`

// checkConfig loads everything `serve` loads, changes nothing, and prints
// the settings in force or every problem found (exit status 2).
func checkConfig(args []string, stdout, stderr io.Writer) int {
	flags, file := newFlags("check-config")
	var sw config.Switches
	sw.Register(flags)
	if code, ok := parseFlags(flags, checkConfigUsage, args, stdout, stderr); !ok {
		return code
	}
	cfg, err := config.Load(*file, sw)
	if err != nil {
		fail(stderr, "facteur", err)
		return 2
	}
	var problems []error
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, v) }
	row("config", or(cfg.File, "(built-in defaults)"))
	row("hostname", cfg.Hostname)
	row("domains", strings.Join(cfg.Domains, ", "))
	for _, l := range []struct {
		name  string
		addrs []string
	}{{"smtp", cfg.Listen.SMTP}, {"smtps", cfg.Listen.SMTPS}, {"relay", cfg.Listen.Relay}, {"submission", cfg.Listen.Submission}} {
		row("listen "+l.name, or(strings.Join(l.addrs, ", "), "off"))
	}
	row("relay_networks", strings.Join(cfg.RelayNetworks, ", "))
	row("data_dir", cfg.DataDir)
	row("maildir_root", cfg.MaildirRoot)
	if d := cfg.Delivery; d.LMTP != "" {
		row("delivery", fmt.Sprintf("queued, then over LMTP to %s, recipients as %s", d.LMTP,
			map[string]string{"mailbox": "mailbox names (alice)", "address": "mailbox@domain"}[d.LMTPRecipient]))
	} else {
		row("delivery", "into the Maildirs under maildir_root before the 250")
	}
	row("sync", syncDesc(cfg))
	u, err := users.Load(cfg.UsersFile, cfg.Domains)
	if err == nil {
		row("users", fmt.Sprintf("%s: %d entries", cfg.UsersFile, u.Len()))
		if missing := u.WithoutPostmaster(); len(missing) > 0 {
			row("postmaster", fmt.Sprintf(`no mailbox at %s, which RFC 5321 requires: add "postmaster alice" (say) to the users file`,
				strings.Join(missing, ", ")))
		}
	} else if errors.Is(err, fs.ErrNotExist) && !cfg.Explicit("users_file") {
		row("users", cfg.UsersFile+": missing, so no local users yet")
	} else {
		problems = append(problems, fmt.Errorf("users_file: %w", err))
	}
	if a, err := aliases.Load(cfg.AliasesFile, cfg.Domains); err == nil {
		row("aliases", fmt.Sprintf("%s: %d entries", cfg.AliasesFile, a.Len()))
	} else if errors.Is(err, fs.ErrNotExist) && !cfg.Explicit("aliases_file") {
		row("aliases", cfg.AliasesFile+": missing, so no aliases")
	} else {
		problems = append(problems, fmt.Errorf("aliases_file: %w", err))
	}
	row("recipient_delimiter", or(cfg.RecipientDelimiter, "none: no +tags"))
	if p, err := passwd.Load(cfg.PasswordsFile); err == nil {
		row("passwords", fmt.Sprintf("%s: %d accounts", cfg.PasswordsFile, p.Len()))
		if u != nil {
			if orphans := u.WithoutMailbox(p.Accounts()); len(orphans) > 0 {
				row("accounts", fmt.Sprintf("%s: no such mailbox in the users map, so no address to send from",
					strings.Join(orphans, ", ")))
			}
		}
	} else if errors.Is(err, fs.ErrNotExist) && !cfg.Explicit("passwords_file") {
		row("passwords", cfg.PasswordsFile+": missing, so AUTH refuses every login")
	} else {
		problems = append(problems, fmt.Errorf("passwords_file: %w", err))
	}
	if desc, err := tlsconf.Inspect(cfg.TLS.Cert, cfg.TLS.Key, cfg.DataDir); err == nil {
		row("certificate", desc)
	} else {
		problems = append(problems, err)
	}
	o := cfg.Outbound
	row("dns", or(cfg.DNS, "first nameserver of /etc/resolv.conf"))
	if cfg.Inbound.CheckSenders {
		checks := "SPF, DKIM, DMARC"
		if cfg.DMARCMode() == auth.Off {
			checks = "SPF, DKIM"
		}
		row("senders", fmt.Sprintf("%s checked on smtp/smtps: dmarc=%s, authserv_id=%s", checks, cfg.DMARCMode(), cfg.Inbound.AuthservID))
	} else {
		row("senders", "not checked (inbound.check_senders = false)")
	}
	row("outbound", fmt.Sprintf("tls=%s port=%d workers=%d per_domain=%d pipelining=%t", o.TLS, o.Port, o.Workers, o.PerDomain, o.Pipelining))
	warning := "no delay warning"
	if o.DelayWarning.Duration > 0 {
		warning = "delay warning after " + o.DelayWarning.String()
	}
	row("retries", fmt.Sprintf("backoff %s doubling to %s, %s, bounce after %s", o.MinBackoff, o.MaxBackoff, warning, o.Lifetime))
	l := cfg.Limits
	if ks, err := dkim.Load(cfg.DKIM.KeysDir); err != nil {
		problems = append(problems, err)
	} else if ks.Len() == 0 {
		row("dkim", cfg.DKIM.KeysDir+": no keys, so mail goes out unsigned (facteur dkim keygen makes one)")
	} else {
		expiry := "signatures expire after " + cfg.DKIM.Expiration.String()
		if cfg.DKIM.Expiration.Duration == 0 {
			expiry = "signatures never expire"
		}
		row("dkim", cfg.DKIM.KeysDir+", "+expiry)
		for _, k := range ks.All() {
			row("dkim key", fmt.Sprintf("%s selector %s: %s, %d bits (%s)", k.Domain, k.Selector, k.Algorithm(), k.Bits(), k.File))
		}
	}
	row("dnsbl", or(strings.Join(cfg.Inbound.DNSBL, ", "), "off"))
	spam := "off"
	if in := cfg.Inbound; in.Rspamd != "" {
		spam = fmt.Sprintf("%s, timeout %s, on error %s", in.Rspamd, in.RspamdTimeout, in.RspamdOnError)
	}
	row("rspamd", spam)
	row("limits", fmt.Sprintf("message %d bytes, %d recipients, timeout %s, %d connections (%d per IP), min free %d bytes",
		l.MaxMessageBytes, l.MaxRecipients, l.Timeout, l.MaxConnections, l.MaxConnectionsPerIP, l.MinFreeBytes))
	row("metrics", or(cfg.Metrics.Listen, "off"))
	row("log", or(cfg.Log.File, "stderr")+", level "+cfg.Log.Level)
	for _, w := range cfg.Warnings() {
		row("warning", w)
	}
	tw.Flush()
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintf(stderr, "facteur: %v\n", p)
		}
		return 2
	}
	return 0
}

func or(s, dflt string) string {
	if s == "" {
		return dflt
	}
	return s
}

// syncDesc says how a message is made durable, and where the kernel or
// the filesystem has turned the chosen way into the other.
func syncDesc(cfg *config.Config) string {
	m := cfg.SyncMode()
	switch {
	case m.Effective() != m:
		return fmt.Sprintf("%s, working as %s: this kernel's syncfs does not report write errors (Linux 5.8 does)", m, m.Effective())
	case m == durable.Filesystem:
		desc := "filesystem: one syncfs for the messages of each moment, before each 250"
		for _, dir := range []string{cfg.DataDir, cfg.MaildirRoot} {
			// A directory not made yet is judged when it is.
			if e, why, err := m.EffectiveIn(dir); err == nil && e != m {
				desc += fmt.Sprintf("; working as %s in %s: %s", e, dir, why)
			}
		}
		return desc
	}
	return "file: fsync of each file and its directory before each 250"
}
