// Package daemon assembles facteur from its parts for `facteur serve`:
// it opens storage, binds every listener, and runs until told to stop,
// re-reading what can change without a restart on SIGHUP.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"facteur/internal/aliases"
	"facteur/internal/auth"
	"facteur/internal/config"
	"facteur/internal/courier"
	"facteur/internal/ctl"
	"facteur/internal/dkim"
	"facteur/internal/dnsbl"
	"facteur/internal/durable"
	"facteur/internal/logging"
	"facteur/internal/maildir"
	"facteur/internal/metrics"
	"facteur/internal/mtasts"
	"facteur/internal/mx"
	"facteur/internal/passwd"
	"facteur/internal/queue"
	"facteur/internal/remote"
	"facteur/internal/resolver"
	"facteur/internal/rspamd"
	"facteur/internal/smtpd"
	"facteur/internal/srs"
	"facteur/internal/tlsconf"
	"facteur/internal/tlsrpt"
	"facteur/internal/users"
)

// Daemon is a started facteur: listeners bound, storage open.
type Daemon struct {
	// cfg is what a reload swaps (see reload): read it with config().
	cfg atomic.Pointer[config.Config]
	// readConfig reads the configuration again as at start: same file,
	// same switches.
	readConfig func() (*config.Config, error)
	logs       *logging.Log
	log        *slog.Logger
	tls        *tlsconf.Store
	smtp       *smtpd.Server
	queue      *queue.Queue
	remote     *remote.Client
	// reports counts TLS sessions and sends the daily TLS reports; nil
	// when outbound.tls_reports is off.
	reports *tlsrpt.Reporter
	// sts caches the MTA-STS policies of recipient domains; nil when
	// outbound.mta_sts is off.
	sts *mtasts.Cache
	ctl net.Listener
	// metrics serves /metrics and /healthz; nil when off.
	metrics  *http.Server
	stopping atomic.Bool
	addrs    map[string][]net.Addr
	pprof    *http.Server // nil unless [debug] pprof is set
	// keys are the DKIM keys in force, swapped whole by a reload.
	keys atomic.Pointer[dkim.Keys]
	// usersRead and passwordsRead are the files as last read (see
	// checkFiles); only Run's goroutine uses them once started.
	usersRead, passwordsRead, aliasesRead stamp
}

// Start does everything that can fail because of the configuration, so
// that a bad one stops facteur before it takes any mail. readConfig is how
// a SIGHUP reads the configuration again.
func Start(cfg *config.Config, logs *logging.Log, readConfig func() (*config.Config, error)) (*Daemon, error) {
	log := logs.Logger
	// Known before anything is written: root without an account to become.
	runAs, err := lookupRunAs(cfg)
	if err != nil {
		return nil, err
	}
	for _, w := range cfg.Warnings() {
		log.Warn("configuration: " + w)
	}
	if runAs == nil && os.Geteuid() == 0 && !cfg.RunAsRoot {
		log.Warn("running as root on built-in defaults: with a configuration file facteur switches to its user or refuses to start", "user", cfg.User)
	}
	// The maildrop is made here, so that it belongs to the server's user
	// even when root's sendmail is the first to use it.
	for _, dir := range []string{cfg.DataDir, cfg.MaildirRoot, filepath.Join(cfg.DataDir, "maildrop")} {
		if err := durable.MkdirAll(dir); err != nil {
			return nil, err
		}
	}
	usersRead, passwordsRead, aliasesRead := stampOf(cfg.UsersFile), stampOf(cfg.PasswordsFile), stampOf(cfg.AliasesFile)
	u, err := loadUsers(cfg, log)
	if err != nil {
		return nil, err
	}
	al, err := loadAliases(cfg, log)
	if err != nil {
		return nil, err
	}
	pw, err := loadPasswords(cfg, u, log)
	if err != nil {
		return nil, err
	}
	ts, err := tlsconf.Open(cfg.TLS.Cert, cfg.TLS.Key, cfg.DataDir, cfg.Hostname)
	if err != nil {
		return nil, err
	}
	logSyncFallbacks(cfg, log)
	store := maildir.New(cfg.MaildirRoot, cfg.Hostname, cfg.SyncMode())
	if n, err := store.CleanTmp(time.Now()); err != nil {
		log.Warn("cleaning stale Maildir tmp files", "err", err)
	} else if n > 0 {
		log.Info("removed stale Maildir tmp files", "count", n)
	}
	keys, err := dkim.Load(cfg.DKIM.KeysDir)
	if err != nil {
		return nil, err
	}
	d := &Daemon{readConfig: readConfig, logs: logs, log: log, tls: ts, addrs: map[string][]net.Addr{},
		usersRead: usersRead, passwordsRead: passwordsRead, aliasesRead: aliasesRead}
	d.cfg.Store(cfg)
	d.keys.Store(keys)
	// The gauges read the queue, which is opened with the counters.
	m := metrics.New(func() (int, time.Time) { return d.queue.Stats() })
	sign := &signer{keys: d.signingKeys, metrics: m, log: log}
	dnsc, err := resolver.New(cfg.DNS, 0)
	if err != nil {
		return nil, fmt.Errorf("dns: %w", err)
	}
	if cfg.Outbound.DNSSECTrusted {
		dnsc.TrustAD()
	}
	var spam *rspamd.Client
	if cfg.Inbound.Rspamd != "" {
		if spam, err = rspamd.New(cfg.Inbound.Rspamd, cfg.Inbound.RspamdTimeout.Duration); err != nil {
			return nil, fmt.Errorf("inbound.rspamd: %w", err)
		}
	}
	if d.reports, err = openReports(cfg, dnsc, func() *queue.Queue { return d.queue }, log); err != nil {
		return nil, err
	}
	if cfg.Outbound.MTASTS {
		d.sts, err = mtasts.Open(mtasts.Config{Dir: filepath.Join(cfg.DataDir, "mta-sts"), Resolver: dnsc, Log: log})
		if err != nil {
			return nil, err
		}
	}
	if d.queue, d.remote, err = openQueue(cfg, log, dnsc, store, d.users, sign, m, d.sts); err != nil {
		return nil, err
	}
	if d.reports != nil {
		d.remote.Sessions = d.reports.Counter.Add
	}
	if d.ctl, err = ctl.Listen(cfg.DataDir, flusher{d.queue, d.remote}, log); err != nil {
		return nil, err
	}
	d.smtp = smtpd.New(smtpd.Options{
		Hostname:        cfg.Hostname,
		Maildir:         store,
		Queue:           d.queue,
		QueueLocal:      cfg.Delivery.LMTP != "",
		TLS:             ts.Config(),
		MaxMessageBytes: cfg.Limits.MaxMessageBytes,
		MaxRecipients:   cfg.Limits.MaxRecipients,
		MaxLineBytes:    cfg.Limits.MaxLineBytes,
		Timeout:         cfg.Limits.Timeout.Duration,
		MaxConns:        cfg.Limits.MaxConnections,
		MaxConnsPerIP:   cfg.Limits.MaxConnectionsPerIP,
		RelayAllowed:    func(ip netip.Addr) bool { return d.config().RelayAllowed(ip) },
		LowOnSpace:      durable.NewSpaceFloor(cfg.Limits.MinFreeBytes, cfg.DataDir, cfg.MaildirRoot).Low,
		AuthFailDelay:   time.Second,
		Checks:          senderChecks(cfg, dnsc),
		CheckMode:       cfg.DMARCMode(),
		DNSBL:           dnsbl.New(dnsc, cfg.Inbound.DNSBL),
		Rspamd:          spam,
		RspamdTempfail:  cfg.Inbound.RspamdOnError == "tempfail",
		Metrics:         m,
		Log:             log,
		// Mail forwarded by an alias leaves from an address at our
		// host name, which the host's own A record routes back here.
		RecipientDelimiter: cfg.RecipientDelimiter,
		SRS:                srs.New(cfg.Hostname, cfg.SRS.SecretFile),
		ScratchDir:         cfg.DataDir,
	}, u)
	d.smtp.SetAliases(al)
	d.smtp.SetPasswords(pw)
	binds := []struct {
		name  string
		role  smtpd.Role
		tls   bool
		addrs []string
	}{
		{"smtp", smtpd.Inbound, false, cfg.Listen.SMTP},
		{"smtps", smtpd.Inbound, true, cfg.Listen.SMTPS},
		{"relay", smtpd.Relay, false, cfg.Listen.Relay},
		{"submission", smtpd.Submission, false, cfg.Listen.Submission},
	}
	for _, b := range binds {
		for _, a := range b.addrs {
			la, err := d.smtp.Listen(b.name, b.role, b.tls, a)
			if err != nil {
				d.smtp.Shutdown(context.Background())
				d.ctl.Close()
				return nil, err
			}
			d.addrs[b.name] = append(d.addrs[b.name], la)
		}
	}
	healthy := func() bool { return !d.stopping.Load() }
	if d.metrics, err = serveHTTP("metrics.listen", cfg.Metrics.Listen, m.Handler(healthy), log); err != nil {
		d.smtp.Shutdown(context.Background())
		d.ctl.Close()
		return nil, err
	}
	if d.pprof, err = startPprof(cfg.Debug.Pprof, log); err != nil {
		d.smtp.Shutdown(context.Background())
		d.ctl.Close()
		return nil, err
	}
	// The ports are bound: root is no longer needed.
	if err := runAs.drop(cfg, log); err != nil {
		d.smtp.Shutdown(context.Background())
		d.ctl.Close()
		return nil, err
	}
	return d, nil
}

// senderChecks are the SPF, DKIM and DMARC checks of inbound mail, nil
// when inbound.check_senders is off.
func senderChecks(cfg *config.Config, dnsc *resolver.Resolver) *auth.Checker {
	if !cfg.Inbound.CheckSenders {
		return nil
	}
	return auth.New(dnsc, cfg.Inbound.AuthservID)
}

// config is the configuration in force.
func (d *Daemon) config() *config.Config { return d.cfg.Load() }

// users is the users map in force; the queue's local deliveries read it.
func (d *Daemon) users() *users.Map { return d.smtp.Users() }

// signingKeys are the DKIM keys in force and the lifetime of a signature.
func (d *Daemon) signingKeys() (*dkim.Keys, time.Duration) {
	return d.keys.Load(), d.config().DKIM.Expiration.Duration
}

func openQueue(cfg *config.Config, log *slog.Logger, dnsc *resolver.Resolver, store *maildir.Store, u func() *users.Map,
	sign *signer, m *metrics.Metrics, sts *mtasts.Cache) (*queue.Queue, *remote.Client, error) {
	policy, err := remote.ParsePolicy(cfg.Outbound.TLS)
	if err != nil {
		return nil, nil, fmt.Errorf("outbound.tls: %w", err)
	}
	client := &remote.Client{
		Resolver:       mx.New(dnsc),
		Port:           cfg.Outbound.Port,
		HeloName:       cfg.Hostname,
		TLS:            policy,
		Policies:       tlsPolicies(cfg, log, dnsc, policy, sts),
		ConnectTimeout: cfg.Outbound.ConnectTimeout.Duration,
		NoPipelining:   !cfg.Outbound.Pipelining,
		Log:            log,
	}
	q, err := queue.Open(queue.Config{
		Dir:          filepath.Join(cfg.DataDir, "queue"),
		Hostname:     cfg.Hostname,
		Workers:      cfg.Outbound.Workers,
		PerDomain:    cfg.Outbound.PerDomain,
		MinBackoff:   cfg.Outbound.MinBackoff.Duration,
		MaxBackoff:   cfg.Outbound.MaxBackoff.Duration,
		Lifetime:     cfg.Outbound.Lifetime.Duration,
		DelayWarning: cfg.Outbound.DelayWarning.Duration,
		Sync:         cfg.SyncMode(),
		Courier: &router{
			local:  localCourier(cfg, store, u, log),
			remote: courier.Remote{Client: client},
			users:  u,
			sign:   sign,
		},
		Metrics: m,
		Log:     log,
	})
	return q, client, err
}

// localCourier delivers the mail for local users the queue holds: over
// LMTP when [delivery] lmtp is set (then all of it), else into the
// Maildirs (bounces to local senders, mail queued for a domain that
// became local since).
func localCourier(cfg *config.Config, store *maildir.Store, u func() *users.Map, log *slog.Logger) queue.Courier {
	if cfg.Delivery.LMTP == "" {
		return courier.Maildir{Store: store, Users: u, Hostname: cfg.Hostname}
	}
	return courier.LMTP{
		Client:  &remote.LMTP{Address: cfg.Delivery.LMTP, HeloName: cfg.Hostname, Log: log},
		Users:   u,
		Address: cfg.Delivery.LMTPRecipient == "address",
	}
}

// Addrs are the bound addresses of a listener kind ("smtp", "smtps", "relay").
func (d *Daemon) Addrs(name string) []net.Addr { return d.addrs[name] }

// Run serves until ctx ends or SIGTERM/SIGINT, then shuts down cleanly.
func (d *Daemon) Run(ctx context.Context) error {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)

	qctx, stopQueue := context.WithCancel(context.Background())
	queueDone := make(chan struct{})
	go func() { d.queue.Run(qctx); close(queueDone) }()
	go d.pickup(qctx)
	reportsDone := make(chan struct{})
	if d.reports != nil {
		go func() { d.reports.Run(qctx); close(reportsDone) }()
	} else {
		close(reportsDone)
	}
	stsDone := make(chan struct{})
	if d.sts != nil {
		go func() { d.sts.Run(qctx); close(stsDone) }()
	} else {
		close(stsDone)
	}
	defer func() {
		stopQueue()
		<-queueDone
		<-reportsDone // the counts written
		<-stsDone
		d.remote.Close() // QUIT the connections kept for reuse
	}()

	d.smtp.Serve()
	var listening []string
	for _, name := range []string{"smtp", "smtps", "relay", "submission"} {
		for _, a := range d.addrs[name] {
			listening = append(listening, name+"="+a.String())
		}
	}
	cert, _ := d.tls.Files()
	cfg := d.config()
	d.log.Info("facteur started", "hostname", cfg.Hostname, "domains", strings.Join(cfg.Domains, ","),
		"listen", strings.Join(listening, " "), "maildir_root", cfg.MaildirRoot, "users", d.smtp.Users().Len(),
		"cert", cert, "certificate", d.tls.Describe(), "dkim", keyNames(d.keys.Load()),
		"dnsbl", strings.Join(cfg.Inbound.DNSBL, ","), "rspamd", cfg.Inbound.Rspamd, "pid", os.Getpid())
	files := time.NewTicker(filesCheck)
	defer files.Stop()
	for {
		select {
		case <-ctx.Done():
			return d.shutdown()
		case <-files.C:
			d.checkFiles()
		case s := <-sigs:
			if s == syscall.SIGHUP {
				d.reload()
				continue
			}
			d.log.Info("stopping", "signal", s.String())
			return d.shutdown()
		}
	}
}

func (d *Daemon) shutdown() error {
	ctx, cancel := context.WithTimeout(context.Background(), d.config().Limits.ShutdownGrace.Duration)
	defer cancel()
	d.stopping.Store(true) // /healthz says so while sessions drain
	d.ctl.Close()
	err := d.smtp.Shutdown(ctx)
	for _, srv := range []*http.Server{d.pprof, d.metrics} {
		if srv != nil {
			srv.Close()
		}
	}
	if err != nil {
		d.log.Warn("stopped", "err", err)
		return nil
	}
	d.log.Info("stopped")
	return nil
}

// reload reads the configuration file again and takes from it what can
// change without a restart (see config.Reloaded), reopens the log file
// (logrotate moves it away, then reloads), and re-reads the users map, the
// aliases, the passwords and the certificate. A broken new file keeps the
// old one in force, and the log says so. The users map, the aliases and
// the passwords are also re-read when their files change (see checkFiles).
func (d *Daemon) reload() {
	old := d.config()
	cfg, later := old, []string(nil)
	if n, err := d.readConfig(); err != nil {
		d.log.Error("reload: configuration kept", "err", err)
	} else {
		cfg, later = old.Reloaded(n)
	}
	// Even with the same name: after logrotate it is another file.
	if err := d.logs.Apply(cfg.Log.File, cfg.Log.Level); err != nil {
		d.log.Error("reload: log kept", "err", err)
		if cfg != old {
			cfg.Log = old.Log
		}
	}
	if cfg != old {
		d.cfg.Store(cfg)
		d.log.Info("reload: configuration", "file", cfg.File, "domains", strings.Join(cfg.Domains, ","),
			"relay_networks", strings.Join(cfg.RelayNetworks, ","), "log_level", cfg.Log.Level)
	}
	if len(later) > 0 {
		d.log.Warn("reload: these settings changed but take effect only at the next start", "keys", strings.Join(later, ","))
	}
	d.reloadUsers(cfg, "SIGHUP")
	d.reloadAliases(cfg, "SIGHUP")
	d.reloadPasswords(cfg, "SIGHUP")
	if ks, err := dkim.Load(cfg.DKIM.KeysDir); err != nil {
		d.log.Error("reload: dkim keys kept", "err", err)
	} else {
		d.keys.Store(ks)
		d.log.Info("reload: dkim keys", "dir", cfg.DKIM.KeysDir, "keys", keyNames(ks))
	}
	if err := d.tls.Use(cfg.TLS.Cert, cfg.TLS.Key); err != nil {
		d.log.Error("reload: certificate kept", "err", err)
	} else {
		cert, _ := d.tls.Files()
		d.log.Info("reload: certificate", "file", cert, "certificate", d.tls.Describe())
	}
}

// keyNames lists the DKIM keys as domain/selector, for the log.
func keyNames(ks *dkim.Keys) string {
	var names []string
	for _, k := range ks.All() {
		names = append(names, k.Domain+"/"+k.Selector)
	}
	if names == nil {
		return "none"
	}
	return strings.Join(names, ",")
}

// loadPasswords reads the passwords file, and warns about the accounts
// that are no mailbox of u, the users map in force: they can log in, but
// may send from no address.
func loadPasswords(cfg *config.Config, u *users.Map, log *slog.Logger) (*passwd.DB, error) {
	db, err := passwd.Load(cfg.PasswordsFile)
	if errors.Is(err, fs.ErrNotExist) && !cfg.Explicit("passwords_file") {
		log.Info("no passwords file: AUTH refuses every login until `facteur passwd` makes one", "file", cfg.PasswordsFile)
		return passwd.Empty(), nil
	}
	if err != nil {
		return nil, fmt.Errorf("passwords_file: %w", err)
	}
	if orphans := u.WithoutMailbox(db.Accounts()); len(orphans) > 0 {
		log.Warn("accounts with no mailbox in the users map: they can log in but send from no address",
			"file", cfg.PasswordsFile, "users_file", cfg.UsersFile, "accounts", strings.Join(orphans, ","))
	}
	return db, nil
}

// loadAliases reads the aliases file; a missing one is no aliases unless
// the operator named it.
func loadAliases(cfg *config.Config, log *slog.Logger) (*aliases.Table, error) {
	a, err := aliases.Load(cfg.AliasesFile, cfg.Domains)
	if errors.Is(err, fs.ErrNotExist) && !cfg.Explicit("aliases_file") {
		log.Debug("no aliases file", "file", cfg.AliasesFile)
		return aliases.Parse(strings.NewReader(""), cfg.AliasesFile, cfg.Domains)
	}
	if err != nil {
		return nil, fmt.Errorf("aliases_file: %w", err)
	}
	return a, nil
}

func loadUsers(cfg *config.Config, log *slog.Logger) (*users.Map, error) {
	u, err := users.Load(cfg.UsersFile, cfg.Domains)
	if errors.Is(err, fs.ErrNotExist) && !cfg.Explicit("users_file") {
		log.Warn("no users file: every recipient will be refused until it exists", "file", cfg.UsersFile)
		return users.Parse(strings.NewReader(""), cfg.UsersFile, cfg.Domains)
	}
	if err != nil {
		return nil, fmt.Errorf("users_file: %w", err)
	}
	if missing := u.WithoutPostmaster(); len(missing) > 0 {
		log.Warn(`no mailbox for postmaster, which RFC 5321 requires: add a line such as "postmaster alice" to the users file`,
			"file", cfg.UsersFile, "domains", strings.Join(missing, ","))
	}
	return u, nil
}
