// Package config holds facteur's settings: the TOML file, the defaults that
// let `facteur serve` run without one, and the command-line switches of the
// older C daemons, merged into one immutable value.
package config

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"

	"facteur/internal/auth"
	"facteur/internal/durable"
	"facteur/internal/remote"
)

// Config is passed down by value or pointer but never changed after Load:
// a reload builds a new one.
type Config struct {
	Hostname      string   `toml:"hostname"`
	Domains       []string `toml:"domains"`
	DataDir       string   `toml:"data_dir"`
	MaildirRoot   string   `toml:"maildir_root"`
	UsersFile     string   `toml:"users_file"`
	PasswordsFile string   `toml:"passwords_file"`
	AliasesFile   string   `toml:"aliases_file"`
	// RecipientDelimiter separates a local part from its tag:
	// "alice+news" is alice's; "" turns tags off.
	RecipientDelimiter string   `toml:"recipient_delimiter"`
	RelayNetworks      []string `toml:"relay_networks"`
	// DNS is the resolver ("host:port") of every lookup facteur makes;
	// empty means the first nameserver of /etc/resolv.conf.
	DNS string `toml:"dns"`
	// Sync is how a message is made durable before its 250: "filesystem"
	// (one syncfs shared by the messages of that moment) or "file" (fsync
	// of each file and its directory); see durable.Mode.
	Sync string `toml:"sync"`
	// User is the account facteur switches to after binding its ports
	// when started as root; RunAsRoot allows staying root instead.
	User      string   `toml:"user"`
	RunAsRoot bool     `toml:"run_as_root"`
	Listen    Listen   `toml:"listen"`
	TLS       TLS      `toml:"tls"`
	Limits    Limits   `toml:"limits"`
	Outbound  Outbound `toml:"outbound"`
	DKIM      DKIM     `toml:"dkim"`
	Inbound   Inbound  `toml:"inbound"`
	Metrics   Metrics  `toml:"metrics"`
	Debug     Debug    `toml:"debug"`
	Log       Log      `toml:"log"`
	SRS       SRS      `toml:"srs"`
	Delivery  Delivery `toml:"delivery"`

	// File is the configuration file read, "" when running on defaults.
	File string `toml:"-"`
	// explicit holds the keys the operator set (file or switch), for the
	// files whose absence is fine by default but an error when chosen.
	explicit map[string]bool
	// relayNets is RelayNetworks parsed, syncMode Sync.
	relayNets []netip.Prefix
	syncMode  durable.Mode
	// warnings are what Load accepted but the operator should change.
	warnings []string
}

type Listen struct {
	SMTP       []string `toml:"smtp"`
	SMTPS      []string `toml:"smtps"`
	Relay      []string `toml:"relay"`
	Submission []string `toml:"submission"`
}

// Metrics is the Prometheus endpoint; an empty Listen turns it off.
type Metrics struct {
	Listen string `toml:"listen"`
}

// Debug holds what an operator turns on to look inside: Pprof is a
// loopback address for net/http/pprof, off when empty.
type Debug struct {
	Pprof string `toml:"pprof"`
}

type TLS struct {
	Cert string `toml:"cert"`
	Key  string `toml:"key"`
}

type Limits struct {
	MaxMessageBytes     int64    `toml:"max_message_bytes"`
	MaxRecipients       int      `toml:"max_recipients"`
	MaxLineBytes        int      `toml:"max_line_bytes"`
	Timeout             Duration `toml:"timeout"`
	MaxConnections      int      `toml:"max_connections"`
	MaxConnectionsPerIP int      `toml:"max_connections_per_ip"`
	ShutdownGrace       Duration `toml:"shutdown_grace"`
	// MinFreeBytes refuses new mail (452 4.3.1) while the data disk has
	// less free space, so the disk never fills up under a message.
	MinFreeBytes int64 `toml:"min_free_bytes"`
}

type Outbound struct {
	Workers   int `toml:"workers"`
	PerDomain int `toml:"per_domain"`
	// DNS is the older name of the top-level dns key, still read.
	DNS            string   `toml:"dns"`
	Port           int      `toml:"port"`
	TLS            string   `toml:"tls"`
	ConnectTimeout Duration `toml:"connect_timeout"`
	MinBackoff     Duration `toml:"min_backoff"`
	MaxBackoff     Duration `toml:"max_backoff"`
	Lifetime       Duration `toml:"lifetime"`
	// DelayWarning: a message still pending this long after it arrived
	// gets one delay warning to its sender; 0 turns warnings off.
	DelayWarning Duration `toml:"delay_warning"`
	// Pipelining lets the relay pipeline with servers that offer it; off
	// is for a server that offers it and mishandles it.
	Pipelining bool `toml:"pipelining"`
	// MTASTS applies the MTA-STS policies (RFC 8461) recipient domains
	// publish: TLS with a valid certificate to the MX hosts they name.
	MTASTS bool `toml:"mta_sts"`
	// DANE pins the certificates of MX hosts with DNSSEC-signed TLSA
	// records (RFC 7672); it needs a validating resolver (see DNSSECTrusted).
	DANE bool `toml:"dane"`
	// DNSSECTrusted believes the AD bit of a `dns` resolver that is not on
	// loopback: the operator says the path to it is secure.
	DNSSECTrusted bool `toml:"dnssec_trusted"`
	// TLSReports sends the daily TLS reports (RFC 8460) domains ask for
	// with _smtp._tls TXT records; off by default, as a report reveals
	// how much mail went to the domain.
	TLSReports bool `toml:"tls_reports"`
}

// DKIM is how outgoing mail is signed; see package dkim.
type DKIM struct {
	// KeysDir holds <domain>/<selector>.pem; default <data_dir>/dkim.
	KeysDir string `toml:"keys_dir"`
	// Expiration is the lifetime of each signature (the x= tag); 0 is none.
	Expiration Duration `toml:"expiration"`
}

// Inbound is how mail from the Internet (listeners smtp and smtps) is
// checked; mail from the relay, submission and sendmail is trusted.
type Inbound struct {
	// CheckSenders turns the SPF, DKIM and DMARC checks on.
	CheckSenders bool `toml:"check_senders"`
	// AuthservID names this server in the Authentication-Results header
	// it writes (RFC 8601); default the hostname.
	AuthservID string `toml:"authserv_id"`
	// DMARC is what the verdicts on the sender (SPF, DKIM, DMARC) do:
	// "enforce" (refuse or quarantine as the sender's policy asks), "tag"
	// (only write the header) or "off" (tag, without DMARC).
	DMARC string `toml:"dmarc"`
	// dmarcMode is DMARC parsed.
	dmarcMode auth.Mode
	// DNSBL are the blocklist zones a client is looked up in, once per
	// connection; a listed client is refused at RCPT, postmaster aside.
	DNSBL []string `toml:"dnsbl"`
	// Rspamd is the URL of an rspamd (its normal worker) that checks
	// every message at the end of DATA; "" turns it off.
	Rspamd        string   `toml:"rspamd"`
	RspamdTimeout Duration `toml:"rspamd_timeout"`
	// RspamdOnError is what a message gets when rspamd gives no verdict:
	// "accept" (taken unchecked) or "tempfail" (451 4.7.1).
	RspamdOnError string `toml:"rspamd_on_error"`
}

// SRS is how the envelope sender of forwarded mail is rewritten
// (Sender Rewriting Scheme), so that SPF passes where it is forwarded to.
// Delivery is how mail for local users is stored: in the Maildirs under
// maildir_root, or handed to a mailbox server over LMTP.
type Delivery struct {
	// LMTP is where the mailbox server listens, "unix:/run/dovecot/lmtp"
	// or "127.0.0.1:24"; empty stores into the Maildirs. When set, local
	// mail is queued, then delivered over LMTP.
	LMTP string `toml:"lmtp"`
	// LMTPRecipient is what the server gets as each recipient: "mailbox",
	// the users map's mailbox name, or "address", mailbox@domain.
	LMTPRecipient string `toml:"lmtp_recipient"`
}

type SRS struct {
	// SecretFile holds the key of the rewritten addresses' signatures;
	// default <data_dir>/srs.key, made on first use.
	SecretFile string `toml:"secret_file"`
}

type Log struct {
	File  string `toml:"file"`
	Level string `toml:"level"`
}

// Duration is a time.Duration written as "5m", "30s" or "5d" in the file.
type Duration struct{ time.Duration }

func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// ParseDuration is time.ParseDuration plus a "d" (day) unit, because queue
// lifetimes are thought of in days.
func ParseDuration(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		var n float64
		if _, err := fmt.Sscanf(days, "%g", &n); err != nil || n < 0 {
			return 0, fmt.Errorf("invalid duration %q", s)
		}
		return time.Duration(n * 24 * float64(time.Hour)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("invalid duration %q", s)
	}
	return d, nil
}

// Defaults returns the settings `facteur serve` runs on without a file:
// loopback, unprivileged ports, everything under ./var.
func Defaults() Config {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	return Config{
		Hostname:           host,
		DataDir:            "var",
		UsersFile:          "users",
		PasswordsFile:      "passwords",
		AliasesFile:        "aliases",
		RecipientDelimiter: "+",
		RelayNetworks:      []string{"127.0.0.0/8", "::1/128"},
		Sync:               "filesystem",
		User:               "facteur",
		Listen: Listen{
			SMTP:       []string{"127.0.0.1:2525"},
			SMTPS:      []string{"127.0.0.1:4465"},
			Relay:      []string{"127.0.0.1:2587"},
			Submission: []string{"127.0.0.1:2588"},
		},
		Limits: Limits{
			MaxMessageBytes:     25 << 20,
			MaxRecipients:       100,
			MaxLineBytes:        4096,
			Timeout:             Duration{5 * time.Minute},
			MaxConnections:      1000,
			MaxConnectionsPerIP: 50,
			ShutdownGrace:       Duration{30 * time.Second},
			MinFreeBytes:        64 << 20,
		},
		Delivery: Delivery{LMTPRecipient: "mailbox"},
		Outbound: Outbound{
			Workers:        16,
			PerDomain:      4,
			Port:           25,
			TLS:            "opportunistic",
			ConnectTimeout: Duration{30 * time.Second},
			MinBackoff:     Duration{5 * time.Minute},
			MaxBackoff:     Duration{time.Hour},
			Lifetime:       Duration{5 * 24 * time.Hour},
			DelayWarning:   Duration{4 * time.Hour},
			Pipelining:     true,
			MTASTS:         true,
			DANE:           true,
		},
		DKIM:    DKIM{Expiration: Duration{72 * time.Hour}},
		Inbound: Inbound{CheckSenders: true, DMARC: "enforce", RspamdTimeout: Duration{20 * time.Second}, RspamdOnError: "accept"},
		Log:     Log{Level: "info"},
	}
}

// systemFile is the configuration `make install` writes. A build for
// another layout sets it: go build -ldflags "-X
// facteur/internal/config.systemFile=PATH" (the Makefile passes its
// CONFDIR; the end-to-end tests a folder of their own).
var systemFile = "/etc/facteur/facteur.toml"

// DefaultFile is the file read when --config is not given: $FACTEUR_CONFIG,
// else facteur.toml in the working directory when it exists, else the
// installed one (systemFile) when it exists, else none.
func DefaultFile() string {
	if f := os.Getenv("FACTEUR_CONFIG"); f != "" {
		return f
	}
	for _, f := range []string{"facteur.toml", systemFile} {
		if _, err := os.Stat(f); err == nil {
			return f
		}
	}
	return ""
}

// SearchOrder says where DefaultFile looks, for help and error messages.
func SearchOrder() string { return "$FACTEUR_CONFIG, ./facteur.toml, " + systemFile }

// Load reads file (none when empty) over the defaults, applies the
// switches, resolves relative paths against the file's directory and
// validates the result. A mistake in the file or the values is returned as
// Errors, every one of them with its key and line; a bad switch as the
// error naming it.
func Load(file string, sw Switches) (*Config, error) {
	c := Defaults()
	c.explicit = map[string]bool{}
	base := "."
	var r *fileReader
	if file != "" {
		var err error
		if r, err = readFile(file, &c); err != nil {
			return nil, err
		}
		c.File = file
		for _, k := range r.md.Keys() {
			c.explicit[k.String()] = true
		}
		base = filepath.Dir(file)
	}
	c.resolvePaths(base)
	// Paths given as switches are relative to the working directory, as any
	// command-line path is, so they are applied after the file's are resolved.
	if err := sw.apply(&c); err != nil {
		return nil, err
	}
	var errs Errors
	if r != nil {
		errs = r.probs
	}
	errs = append(errs, c.validate()...)
	if len(errs) == 0 {
		return &c, nil
	}
	for i := range errs {
		errs[i].File = file
		if r != nil && errs[i].Line == 0 {
			errs[i].Line = r.line(errs[i].Key)
		}
	}
	// In the file's order; what has no line (a default, a switch) last.
	slices.SortStableFunc(errs, func(a, b Problem) int {
		return cmp.Compare(cmp.Or(a.Line, math.MaxInt), cmp.Or(b.Line, math.MaxInt))
	})
	return nil, errs
}

func (c *Config) resolvePaths(base string) {
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(base, p)
	}
	c.DataDir = abs(c.DataDir)
	if c.MaildirRoot == "" {
		c.MaildirRoot = filepath.Join(c.DataDir, "mail")
	} else {
		c.MaildirRoot = abs(c.MaildirRoot)
	}
	if c.DKIM.KeysDir == "" {
		c.DKIM.KeysDir = filepath.Join(c.DataDir, "dkim")
	} else {
		c.DKIM.KeysDir = abs(c.DKIM.KeysDir)
	}
	if c.SRS.SecretFile == "" {
		c.SRS.SecretFile = filepath.Join(c.DataDir, "srs.key")
	} else {
		c.SRS.SecretFile = abs(c.SRS.SecretFile)
	}
	c.UsersFile = abs(c.UsersFile)
	c.PasswordsFile = abs(c.PasswordsFile)
	c.AliasesFile = abs(c.AliasesFile)
	c.TLS.Cert = abs(c.TLS.Cert)
	c.TLS.Key = abs(c.TLS.Key)
	c.Log.File = abs(c.Log.File)
}

// validate checks every value, and puts the ones that have a canonical
// form (host names, domains) in it.
func (c *Config) validate() []Problem {
	var probs []Problem
	bad := func(key, format string, args ...any) {
		probs = append(probs, Problem{Key: key, Err: fmt.Errorf(format, args...)})
	}
	c.Hostname = strings.TrimSuffix(strings.ToLower(c.Hostname), ".")
	if c.Hostname == "" || strings.ContainsAny(c.Hostname, " \t\r\n/") {
		bad("hostname", "%q is not a host name", c.Hostname)
	}
	if len(c.Domains) == 0 {
		c.Domains = []string{c.Hostname, "localhost"}
	}
	for i, d := range c.Domains {
		d = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(d)), ".")
		if d == "" || strings.ContainsAny(d, " \t@/[]") {
			bad("domains", "%q is not a domain", c.Domains[i])
		}
		c.Domains[i] = d
	}
	if c.DataDir == "" {
		bad("data_dir", "must not be empty")
	}
	if c.UsersFile == "" {
		bad("users_file", "must not be empty")
	}
	if c.AliasesFile == "" {
		bad("aliases_file", "must not be empty")
	}
	// One character that a local part may hold but that no address
	// needs for itself; "" turns tags off.
	if d := c.RecipientDelimiter; d != "" && (len(d) != 1 || !strings.Contains("+-_", d)) {
		bad("recipient_delimiter", "%q is not one of \"+\", \"-\", \"_\" or \"\"", d)
	}
	switch o := c.Outbound.DNS; {
	case o == "":
	case c.DNS == "":
		c.DNS = o
		c.warnings = append(c.warnings, "outbound.dns is now the top-level key dns, the resolver of every lookup: move it there")
	case c.DNS != o:
		bad("dns", "%q and outbound.dns %q disagree: keep only dns", c.DNS, o)
	}
	c.Outbound.DNS = ""
	for i, z := range c.Inbound.DNSBL {
		z = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(z)), ".")
		if _, ok := dns.IsDomainName(z); !ok || !strings.Contains(z, ".") {
			bad("inbound.dnsbl", "%q is not a DNS zone", c.Inbound.DNSBL[i])
		}
		c.Inbound.DNSBL[i] = z
	}
	if r := c.Inbound.Rspamd; r != "" {
		if u, err := url.Parse(r); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("inbound.rspamd", "%q is not an http:// URL such as \"http://127.0.0.1:11333\"", r)
		}
	}
	if c.Inbound.RspamdTimeout.Duration <= 0 {
		bad("inbound.rspamd_timeout", "must be positive")
	}
	switch c.Inbound.RspamdOnError {
	case "accept", "tempfail":
	default:
		bad("inbound.rspamd_on_error", "%q is not one of accept, tempfail", c.Inbound.RspamdOnError)
	}
	if l := c.Delivery.LMTP; l != "" {
		if _, _, err := remote.ParseLMTPAddress(l); err != nil {
			bad("delivery.lmtp", "%w", err)
		}
	}
	switch c.Delivery.LMTPRecipient {
	case "mailbox", "address":
	default:
		bad("delivery.lmtp_recipient", "%q is not one of mailbox, address", c.Delivery.LMTPRecipient)
	}
	if m, err := durable.ParseMode(c.Sync); err != nil {
		bad("sync", "%w", err)
	} else {
		c.syncMode = m
	}
	if (c.TLS.Cert == "") != (c.TLS.Key == "") {
		bad("tls", "cert and key go together: set both, or neither for a self-signed pair")
	}
	for _, f := range []struct{ key, path string }{{"tls.cert", c.TLS.Cert}, {"tls.key", c.TLS.Key}} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			bad(f.key, "%w", err)
		}
	}
	for _, l := range []struct {
		key   string
		addrs []string
	}{{"listen.smtp", c.Listen.SMTP}, {"listen.smtps", c.Listen.SMTPS}, {"listen.relay", c.Listen.Relay},
		{"listen.submission", c.Listen.Submission}, {"metrics.listen", nonEmpty(c.Metrics.Listen)},
		{"debug.pprof", nonEmpty(c.Debug.Pprof)}} {
		for _, a := range l.addrs {
			if _, _, err := net.SplitHostPort(a); err != nil {
				bad(l.key, "%q: %w", a, err)
			}
		}
	}
	c.relayNets = c.relayNets[:0]
	for _, n := range c.RelayNetworks {
		p, err := netip.ParsePrefix(n)
		if err != nil {
			bad("relay_networks", "%w", err)
			continue
		}
		c.relayNets = append(c.relayNets, p.Masked())
	}
	l := c.Limits
	for _, v := range []struct {
		key string
		ok  bool
		msg string
	}{
		{"limits.max_message_bytes", l.MaxMessageBytes > 0, "must be positive"},
		{"limits.max_recipients", l.MaxRecipients > 0, "must be positive"},
		{"limits.max_line_bytes", l.MaxLineBytes >= 1000, "must be at least 1000 (RFC 5321 4.5.3.1.6)"},
		{"limits.timeout", l.Timeout.Duration > 0, "must be positive"},
		{"limits.max_connections", l.MaxConnections > 0, "must be positive"},
		{"limits.max_connections_per_ip", l.MaxConnectionsPerIP > 0, "must be positive"},
		{"limits.min_free_bytes", l.MinFreeBytes >= 0, "must not be negative"},
		{"outbound.workers", c.Outbound.Workers > 0, "must be positive"},
		{"outbound.per_domain", c.Outbound.PerDomain > 0, "must be positive"},
		{"outbound.port", c.Outbound.Port > 0 && c.Outbound.Port <= 65535, "must be a port number"},
		{"outbound.min_backoff", c.Outbound.MinBackoff.Duration > 0, "must be positive"},
		{"outbound.max_backoff", c.Outbound.MaxBackoff.Duration >= c.Outbound.MinBackoff.Duration, "must not be less than min_backoff"},
		{"outbound.lifetime", c.Outbound.Lifetime.Duration > 0, "must be positive"},
	} {
		if !v.ok {
			bad(v.key, "%s", v.msg)
		}
	}
	switch c.Outbound.TLS {
	case "opportunistic", "required", "verify", "none":
	default:
		bad("outbound.tls", "%q is not one of opportunistic, required, verify, none", c.Outbound.TLS)
	}
	if _, err := ParseLevel(c.Log.Level); err != nil {
		bad("log.level", "%w", err)
	}
	if c.Inbound.AuthservID == "" {
		c.Inbound.AuthservID = c.Hostname
	}
	// A token of RFC 2045, so that it needs no quoting in the header.
	if strings.ContainsFunc(c.Inbound.AuthservID, func(r rune) bool {
		return r <= ' ' || r >= 0x7f || strings.ContainsRune(`()<>@,;:\"/[]?=`, r)
	}) {
		bad("inbound.authserv_id", "%q is not a single word such as a host name", c.Inbound.AuthservID)
	}
	var err error
	if c.Inbound.dmarcMode, err = auth.ParseMode(c.Inbound.DMARC); err != nil {
		bad("inbound.dmarc", "%w", err)
	}
	return probs
}

func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

// Explicit tells whether the operator set key ("users_file",
// "passwords_file"...) rather than leaving its default: a missing default
// file means "none yet", a missing chosen one is a mistake.
func (c *Config) Explicit(key string) bool { return c.explicit[key] }

// Warnings are the settings Load accepted but that should change, each a
// sentence naming the key.
func (c *Config) Warnings() []string { return c.warnings }

// SyncMode is Sync parsed.
func (c *Config) SyncMode() durable.Mode { return c.syncMode }

// DMARCMode is inbound.dmarc: what the verdicts on inbound mail may do.
func (c *Config) DMARCMode() auth.Mode { return c.Inbound.dmarcMode }

// RelayAllowed tells whether a client address may relay through the relay
// listener.
func (c *Config) RelayAllowed(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, p := range c.relayNets {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// Reloaded is the configuration a running server moves to when it reads
// n on SIGHUP: c with the settings that can change without a restart
// taken from n (domains, users_file, passwords_file, aliases_file,
// relay_networks, tls, dkim and log), and the keys of the other settings n changes, as the file
// spells them ("hostname", "limits.max_connections"). Those stay as in c,
// so what the server says it runs is what it runs, until the next start.
func (c *Config) Reloaded(n *Config) (*Config, []string) {
	r := *c
	r.Domains, r.UsersFile, r.PasswordsFile, r.AliasesFile = n.Domains, n.UsersFile, n.PasswordsFile, n.AliasesFile
	r.RelayNetworks, r.relayNets, r.TLS, r.Log = n.RelayNetworks, n.relayNets, n.TLS, n.Log
	r.DKIM = n.DKIM
	r.explicit = maps.Clone(c.explicit)
	for _, k := range []string{"users_file", "passwords_file", "aliases_file"} {
		r.explicit[k] = n.explicit[k]
	}
	var later []string
	for _, s := range []struct {
		key string
		old any
		new any
	}{
		{"hostname", c.Hostname, n.Hostname},
		{"dns", c.DNS, n.DNS},
		{"data_dir", c.DataDir, n.DataDir},
		{"maildir_root", c.MaildirRoot, n.MaildirRoot},
		{"sync", c.Sync, n.Sync},
		{"user", c.User, n.User},
		{"run_as_root", c.RunAsRoot, n.RunAsRoot},
		{"listen", c.Listen, n.Listen},
		{"limits", c.Limits, n.Limits},
		{"outbound", c.Outbound, n.Outbound},
		{"inbound", c.Inbound, n.Inbound},
		{"metrics", c.Metrics, n.Metrics},
		{"debug", c.Debug, n.Debug},
		{"recipient_delimiter", c.RecipientDelimiter, n.RecipientDelimiter},
		{"srs", c.SRS, n.SRS},
		{"delivery", c.Delivery, n.Delivery},
	} {
		later = append(later, changedKeys(s.key, s.old, s.new)...)
	}
	return &r, later
}

// changedKeys names what differs between old and new, the values of key:
// key itself, or for a section each of its keys that differ
// ("limits.max_connections"), which is what the operator edited.
func changedKeys(key string, old, new any) []string {
	if reflect.DeepEqual(old, new) {
		return nil
	}
	o, n := reflect.ValueOf(old), reflect.ValueOf(new)
	var keys []string
	if o.Kind() == reflect.Struct {
		for i := range o.NumField() {
			name, _, _ := strings.Cut(o.Type().Field(i).Tag.Get("toml"), ",")
			if name != "" && !reflect.DeepEqual(o.Field(i).Interface(), n.Field(i).Interface()) {
				keys = append(keys, key+"."+name)
			}
		}
	}
	if len(keys) == 0 {
		return []string{key}
	}
	return keys
}
