package daemon

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"

	"facteur/internal/config"
)

// runAs is the account facteur switches to once its ports are bound, when
// started as root.
type runAs struct {
	name     string
	uid, gid int
}

// lookupRunAs decides, before anything is written, whether facteur will
// leave root: nil when it is not root or run_as_root is set. Started as
// root without an unprivileged account to become, it refuses to run.
func lookupRunAs(cfg *config.Config) (*runAs, error) {
	if os.Geteuid() != 0 || cfg.RunAsRoot {
		return nil, nil
	}
	const hint = "create the account, or set run_as_root = true to stay root"
	if cfg.User == "" {
		return nil, fmt.Errorf("user: started as root with no user to switch to; %s", hint)
	}
	u, err := user.Lookup(cfg.User)
	if err != nil && cfg.File == "" && !cfg.Explicit("user") {
		// Built-in defaults: a try-out on loopback and unprivileged
		// ports, where refusing to start would only get in the way. Any
		// configuration file makes the rule strict.
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("user: started as root, cannot switch to %q: %w; %s", cfg.User, err, hint)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("user: %q: %w", cfg.User, err)
	}
	if uid == 0 {
		return nil, fmt.Errorf("user: %q is root; name an unprivileged account, or set run_as_root = true", cfg.User)
	}
	return &runAs{name: cfg.User, uid: uid, gid: gid}, nil
}

// drop hands data_dir and maildir_root to the account (only the entries
// not already its, so a restart costs a stat per file) and becomes it for
// good: supplementary groups and group first, user last, on every thread
// (Go applies setuid to all threads since 1.16). Then it checks that the
// places mail is written to are writable, so a parent directory the
// account cannot enter stops start-up instead of every delivery.
func (r *runAs) drop(cfg *config.Config, log *slog.Logger) error {
	if r == nil {
		return nil
	}
	changed := 0
	for _, root := range []string{cfg.DataDir, cfg.MaildirRoot} {
		err := filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			info, err := de.Info()
			if err != nil {
				return err
			}
			if st, ok := info.Sys().(*syscall.Stat_t); ok && (int(st.Uid) != r.uid || int(st.Gid) != r.gid) {
				if err := os.Lchown(p, r.uid, r.gid); err != nil {
					return err
				}
				changed++
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("user: giving %s to %s: %w", root, r.name, err)
		}
	}
	if err := syscall.Setgroups([]int{r.gid}); err != nil {
		return fmt.Errorf("user: setgroups: %w", err)
	}
	if err := syscall.Setgid(r.gid); err != nil {
		return fmt.Errorf("user: setgid %d: %w", r.gid, err)
	}
	if err := syscall.Setuid(r.uid); err != nil {
		return fmt.Errorf("user: setuid %d: %w", r.uid, err)
	}
	for _, dir := range []string{cfg.DataDir, filepath.Join(cfg.DataDir, "queue"), cfg.MaildirRoot} {
		f, err := os.CreateTemp(dir, ".tmp-")
		if err != nil {
			return fmt.Errorf("user: %s cannot write in %s (can it enter every parent directory?): %w", r.name, dir, err)
		}
		f.Close()
		os.Remove(f.Name())
	}
	log.Info("switched user", "user", r.name, "uid", r.uid, "gid", r.gid, "files_given", changed)
	return nil
}
