package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// facteur runs the command line args in an empty folder and returns its
// exit status, stdout and stderr.
func facteur(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(args, nil, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestHelpListsTheCommands(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	t.Setenv("FACTEUR_CONFIG", "")
	for _, args := range [][]string{nil, {"help"}, {"-h"}, {"--help"}, {"-help"}} {
		code, out, errs := facteur(t, args...)
		if code != 0 || errs != "" {
			t.Errorf("%q: exit %d, stderr %q", args, code, errs)
		}
		for _, want := range []string{"usage: facteur <command>", "check-config", "sendmail", "/etc/facteur/facteur.toml"} {
			if !strings.Contains(out, want) {
				t.Errorf("%q: no %q in\n%s", args, want, out)
			}
		}
	}
	// A bare facteur no longer starts a server here.
	if ents, _ := os.ReadDir(dir); len(ents) > 0 {
		t.Errorf("the working folder got %v", ents)
	}
}

func TestEveryCommandHasHelp(t *testing.T) {
	t.Chdir(t.TempDir())
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"serve", "--help"}, "usage: facteur serve"},
		{[]string{"serve", "-h"}, "usage: facteur serve"},
		// Switches alone mean serve.
		{[]string{"-l", "-p", "2525", "--help"}, "usage: facteur serve"},
		{[]string{"check-config", "--help"}, "usage: facteur check-config"},
		{[]string{"queue", "--help"}, "usage: facteur queue"},
		{[]string{"passwd", "-h"}, "usage: facteur passwd"},
		{[]string{"dns", "--help"}, "usage: facteur dns"},
		{[]string{"dns", "records", "-h"}, "usage: facteur dns"},
		{[]string{"dkim", "--help"}, "usage: facteur dkim keygen"},
		{[]string{"dkim", "keygen", "--help"}, "usage: facteur dkim keygen"},
		{[]string{"sendmail", "--help"}, "usage: facteur sendmail"},
		{[]string{"help", "queue"}, "usage: facteur queue"},
		{[]string{"--version"}, "facteur "},
		{[]string{"version"}, "facteur "},
	} {
		code, out, errs := facteur(t, tc.args...)
		if code != 0 || errs != "" || !strings.HasPrefix(out, tc.want) {
			t.Errorf("%q: exit %d, stderr %q, stdout:\n%s", tc.args, code, errs, out)
		}
	}
	if _, out, _ := facteur(t, "serve", "--help"); !strings.Contains(out, "-config FILE") || !strings.Contains(out, "-p PORT") {
		t.Errorf("serve's flags are not listed:\n%s", out)
	}
}

func TestUsageMistakes(t *testing.T) {
	t.Chdir(t.TempDir())
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"queue"}, 2, "usage: facteur queue"},
		{[]string{"queue", "bogus"}, 2, `unknown command "bogus"`},
		{[]string{"queue", "remove"}, 2, "usage: facteur queue"},
		{[]string{"serve", "-bogus"}, 2, "usage: facteur serve"},
		{[]string{"passwd"}, 2, "usage: facteur passwd"},
		{[]string{"dns"}, 2, "usage: facteur dns"},
		{[]string{"dns", "bogus"}, 2, `unknown command "bogus"`},
		{[]string{"dkim", "keygen"}, 2, "usage: facteur dkim keygen"},
		{[]string{"sendmail", "-Q"}, 64, "usage: facteur sendmail"},
		{[]string{"bogus"}, 2, `unknown command "bogus"`},
	} {
		code, out, errs := facteur(t, tc.args...)
		if code != tc.code || out != "" || !strings.Contains(errs, tc.want) || strings.Contains(errs, `""`) {
			t.Errorf("%q: exit %d (want %d), stdout %q, stderr:\n%s", tc.args, code, tc.code, out, errs)
		}
	}
}
