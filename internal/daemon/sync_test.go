package daemon

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"facteur/internal/config"
	"facteur/internal/durable"
)

// One line names the directory whose filesystem syncfs cannot be trusted
// on (/proc stands for FUSE, which a test cannot mount), none the other.
func TestLogSyncFallbacks(t *testing.T) {
	if durable.Filesystem.Effective() != durable.Filesystem {
		t.Skip("this kernel makes filesystem work as file everywhere")
	}
	cfg := config.Defaults()
	cfg.DataDir, cfg.MaildirRoot = t.TempDir(), "/proc"
	if m, _, _ := cfg.SyncMode().EffectiveIn(cfg.DataDir); m != durable.Filesystem {
		t.Skip("the test directory is on a filesystem where syncfs is not trusted")
	}
	var out bytes.Buffer
	logSyncFallbacks(&cfg, slog.New(slog.NewTextHandler(&out, nil)))
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], "dirs=[/proc]") || !strings.Contains(lines[0], "not known to make data durable") {
		t.Errorf("log:\n%s", out.String())
	}
}
