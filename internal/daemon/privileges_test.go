package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"facteur/internal/config"
)

func TestRootWithoutAccountOnlyOnBuiltInDefaults(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the rule is about starting as root")
	}
	cfg, err := config.Load("", config.Switches{})
	if err != nil {
		t.Fatal(err)
	}
	cfg.User = "no-such-account-for-facteur"
	if r, err := lookupRunAs(cfg); r != nil || err != nil {
		t.Errorf("built-in defaults: %v, %v; want to stay root with a warning", r, err)
	}
	file := filepath.Join(t.TempDir(), "facteur.toml")
	os.WriteFile(file, []byte("user = \"no-such-account-for-facteur\"\n"), 0o600)
	if cfg, err = config.Load(file, config.Switches{}); err != nil {
		t.Fatal(err)
	}
	if _, err := lookupRunAs(cfg); err == nil || !strings.Contains(err.Error(), "run_as_root") {
		t.Errorf("with a configuration file: %v, want a refusal naming run_as_root", err)
	}
}
