package daemon

import (
	"os"
	"time"

	"facteur/internal/config"
)

// filesCheck is how often the users, aliases and passwords files are looked at: an
// edit takes effect within seconds without a signal, which matters where
// the operator cannot easily reach the process (under `go run`, the PID at
// hand is go run's). A stat of each is all it costs.
const filesCheck = 3 * time.Second

// stamp tells that a file changed without reading it: its modification
// time and size, the zero stamp when it cannot be read.
type stamp struct {
	mtime int64
	size  int64
}

func stampOf(path string) stamp {
	fi, err := os.Stat(path)
	if err != nil {
		return stamp{}
	}
	return stamp{fi.ModTime().UnixNano(), fi.Size()}
}

// checkFiles re-reads the users map, the aliases and the passwords when their files
// changed since they were last read.
func (d *Daemon) checkFiles() {
	cfg := d.config()
	if stampOf(cfg.UsersFile) != d.usersRead {
		d.reloadUsers(cfg, "file changed")
	}
	if stampOf(cfg.AliasesFile) != d.aliasesRead {
		d.reloadAliases(cfg, "file changed")
	}
	if stampOf(cfg.PasswordsFile) != d.passwordsRead {
		d.reloadPasswords(cfg, "file changed")
	}
}

// reloadUsers reads the users map again; a broken file keeps the one in
// force. why is for the log.
func (d *Daemon) reloadUsers(cfg *config.Config, why string) {
	// Taken before reading: an edit that lands during the read is seen
	// at the next check.
	d.usersRead = stampOf(cfg.UsersFile)
	u, err := loadUsers(cfg, d.log)
	if err != nil {
		d.log.Error("reload: users map kept", "because", why, "err", err)
		return
	}
	before := d.smtp.Users().Len()
	d.smtp.SetUsers(u)
	d.log.Info("reload: users map", "because", why, "file", cfg.UsersFile, "entries_before", before, "entries", u.Len())
}

// reloadAliases is reloadUsers for the aliases.
func (d *Daemon) reloadAliases(cfg *config.Config, why string) {
	d.aliasesRead = stampOf(cfg.AliasesFile)
	a, err := loadAliases(cfg, d.log)
	if err != nil {
		d.log.Error("reload: aliases kept", "because", why, "err", err)
		return
	}
	before := d.smtp.Aliases().Len()
	d.smtp.SetAliases(a)
	d.log.Info("reload: aliases", "because", why, "file", cfg.AliasesFile, "entries_before", before, "entries", a.Len())
}

// reloadPasswords is reloadUsers for the passwords that AUTH checks.
func (d *Daemon) reloadPasswords(cfg *config.Config, why string) {
	d.passwordsRead = stampOf(cfg.PasswordsFile)
	pw, err := loadPasswords(cfg, d.smtp.Users(), d.log)
	if err != nil {
		d.log.Error("reload: passwords kept", "because", why, "err", err)
		return
	}
	d.smtp.SetPasswords(pw)
	d.log.Info("reload: passwords", "because", why, "file", cfg.PasswordsFile, "accounts", pw.Len())
}
