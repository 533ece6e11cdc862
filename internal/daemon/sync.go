package daemon

import (
	"log/slog"

	"facteur/internal/config"
)

// logSyncFallbacks says, once per reason, where sync = "filesystem" works
// as "file": everywhere on a kernel whose syncfs hides write errors, or on
// the filesystem of the data directory (the queue) or of the Maildirs when
// syncfs is not known to be durable there (FUSE, NFS). A mailbox linked to
// yet another filesystem gets the same treatment, unlogged: durable
// decides per filesystem at each sync.
func logSyncFallbacks(cfg *config.Config, log *slog.Logger) {
	m := cfg.SyncMode()
	var reasons []string
	dirs := map[string][]string{}
	for _, dir := range []string{cfg.DataDir, cfg.MaildirRoot} {
		e, why, err := m.EffectiveIn(dir)
		if err != nil {
			log.Warn("sync: cannot tell whether syncfs is durable here", "dir", dir, "err", err)
			continue
		}
		if e == m {
			continue
		}
		if dirs[why] == nil {
			reasons = append(reasons, why)
		}
		dirs[why] = append(dirs[why], dir)
	}
	for _, why := range reasons {
		log.Warn("sync: "+why+", so each file and directory is fsync'd instead", "sync", m, "dirs", dirs[why])
	}
}
