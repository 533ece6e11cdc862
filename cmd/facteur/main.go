// Command facteur is a mail transfer agent: an MX for local users' Maildirs
// and a relay with a durable queue, in one process.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"

	"facteur/internal/config"
	"facteur/internal/daemon"
	"facteur/internal/logging"
)

// version is set at build time with -ldflags "-X main.version=..."; else
// the VCS revision Go recorded is shown.
var version = ""

const usage = `usage: facteur <command> [flags]

commands:
  serve     run the server (the default when the first argument is a flag)
  check-config  load the configuration, users, passwords and certificate as
            serve would, print the settings in force, exit 2 on any problem
  queue     list, flush or remove queued messages: facteur queue list|flush|remove ID
  passwd    set a submission password: facteur passwd USER
  dns       the DNS records a domain needs: facteur dns records|check [DOMAIN...]
  dkim      make a DKIM signing key: facteur dkim keygen --domain D [--algorithm rsa|ed25519]
  sendmail  the sendmail interface: facteur sendmail [-t] [-i] [-f FROM] [-F NAME] [RCPT...]
            (also when run through a link named sendmail)
  version   print the version

Every command takes --config FILE (default: $FACTEUR_CONFIG, else
./facteur.toml when present, else built-in defaults).
Run 'facteur serve -h' for the serve flags.
`

func main() {
	// Installed as (or linked to) "sendmail", facteur is that command.
	if filepath.Base(os.Args[0]) == "sendmail" {
		os.Exit(sendmailCmd(os.Args[1:], os.Stdin, os.Stderr))
	}
	os.Exit(run(os.Args[1:], os.Stderr))
}

func run(args []string, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && (len(args[0]) == 0 || args[0][0] != '-') {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(args, stderr)
	case "check-config":
		return checkConfig(args, os.Stdout, stderr)
	case "sendmail":
		return sendmailCmd(args, os.Stdin, stderr)
	case "passwd":
		return passwdCmd(args, os.Stdin, os.Stdout, stderr)
	case "queue":
		return queueCmd(args, os.Stdout, stderr)
	case "dns":
		return dnsCmd(args, os.Stdout, stderr)
	case "dkim":
		return dkimCmd(args, os.Stdout, stderr)
	case "version":
		fmt.Println("facteur", versionString())
		return 0
	case "help":
		fmt.Fprint(os.Stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "facteur: unknown command %q\n%s", cmd, usage)
	return 2
}

func serve(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("facteur serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("config", config.DefaultFile(), "configuration `FILE` (TOML)")
	var sw config.Switches
	sw.Register(fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "facteur: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	cfg, err := config.Load(*file, sw)
	if err != nil {
		fmt.Fprintf(stderr, "facteur: %v\n", err)
		return 2
	}
	logs, err := logging.Open(cfg.Log.File, cfg.Log.Level, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "facteur: %v\n", err)
		return 2
	}
	defer logs.Close()
	d, err := daemon.Start(cfg, logs, func() (*config.Config, error) { return config.Load(*file, sw) })
	if err != nil {
		logs.Error("start-up failed", "err", err)
		fmt.Fprintf(stderr, "facteur: %v\n", err)
		return 2
	}
	if err := d.Run(context.Background()); err != nil {
		logs.Error("stopped on error", "err", err)
		return 1
	}
	return 0
}

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				return "dev-" + s.Value[:min(12, len(s.Value))]
			}
		}
	}
	return "dev"
}
