// Command facteur is a mail transfer agent: an MX for local users' Maildirs
// and a relay with a durable queue, in one process.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"

	"facteur/internal/config"
	"facteur/internal/daemon"
	"facteur/internal/logging"
)

// version is set at build time with -ldflags "-X main.version=..."; else
// the VCS revision Go recorded is shown.
var version = ""

func usage() string {
	return `facteur: a mail server, MX for local Maildirs and relay with a durable queue

usage: facteur <command> [flags]

commands:
  serve         run the server (the command when the first argument is a flag:
                facteur -l -p 2525 is facteur serve -l -p 2525)
  check-config  load the configuration, users, passwords and certificate as
                serve would, print the settings in force or every problem
  queue         list, flush or remove queued messages: facteur queue list|flush|remove ID
  passwd        set a submission password: facteur passwd USER
  dns           the DNS records a domain needs: facteur dns records|check [DOMAIN...]
  dkim          make a DKIM signing key: facteur dkim keygen --domain D [--algorithm rsa|ed25519]
  sendmail      the sendmail interface: facteur sendmail [-t] [-i] [-f FROM] [RCPT...]
                (also when run through a link named sendmail)
  version       print the version (also --version)
  help          print this text; facteur help COMMAND is facteur COMMAND --help

Every command takes --config FILE. Without it, the first of these that exists:
  ` + config.SearchOrder() + `
(the last is where make install puts it); with none, built-in defaults
(listeners on loopback, files under ./var), on which sendmail and queue only
talk to a running server and passwd writes nothing.
`
}

func main() {
	// Installed as (or linked to) "sendmail", facteur is that command.
	if filepath.Base(os.Args[0]) == "sendmail" {
		os.Exit(sendmailCmd(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin *os.File, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stdout, usage())
		return 0
	}
	cmd := args[0]
	switch cmd {
	case "-h", "-help", "--help":
		cmd = "help"
	case "-version", "--version":
		cmd = "version"
	}
	if strings.HasPrefix(cmd, "-") {
		cmd = "serve"
	} else {
		args = args[1:]
	}
	switch cmd {
	case "serve":
		return serve(args, stdout, stderr)
	case "check-config":
		return checkConfig(args, stdout, stderr)
	case "sendmail":
		return sendmailCmd(args, stdin, stdout, stderr)
	case "passwd":
		return passwdCmd(args, stdin, stdout, stderr)
	case "queue":
		return queueCmd(args, stdout, stderr)
	case "dns":
		return dnsCmd(args, stdout, stderr)
	case "dkim":
		return dkimCmd(args, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "facteur", versionString())
		return 0
	case "help":
		if len(args) > 0 && args[0] != "help" {
			return run([]string{args[0], "--help"}, stdin, stdout, stderr)
		}
		fmt.Fprint(stdout, usage())
		return 0
	}
	fmt.Fprintf(stderr, "facteur: unknown command %q\n\n%s", cmd, usage())
	return 2
}

const serveUsage = `usage: facteur serve [--config FILE] [flags]

Runs the server in the foreground until SIGTERM or SIGINT; SIGHUP re-reads
the configuration, the users map, the passwords and the certificate. The
flags of the older C daemons override the file.

flags:
`

func serve(args []string, stdout, stderr io.Writer) int {
	fs, file := newFlags("serve")
	var sw config.Switches
	sw.Register(fs)
	if code, ok := parseFlags(fs, serveUsage, args, stdout, stderr); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "facteur: unexpected argument %q\n\n", fs.Arg(0))
		printUsage(fs, serveUsage, stderr)
		return 2
	}
	cfg, err := config.Load(*file, sw)
	if err != nil {
		fail(stderr, "facteur", err)
		return 2
	}
	logs, err := logging.Open(cfg.Log.File, cfg.Log.Level, stderr)
	if err != nil {
		fail(stderr, "facteur", err)
		return 2
	}
	defer logs.Close()
	d, err := daemon.Start(cfg, logs, func() (*config.Config, error) { return config.Load(*file, sw) })
	if err != nil {
		logs.Error("start-up failed", "err", err)
		fail(stderr, "facteur", err)
		return 2
	}
	if err := d.Run(context.Background()); err != nil {
		logs.Error("stopped on error", "err", err)
		return 1
	}
	return 0
}

// newFlags is a subcommand's flag set with the --config every command takes.
func newFlags(cmd string) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet("facteur "+cmd, flag.ContinueOnError)
	return fs, fs.String("config", config.DefaultFile(), "configuration `FILE` (TOML)")
}

// parseFlags parses a subcommand's flags. Asked for with -h or --help, the
// usage goes to stdout (status 0); after a mistake, to stderr (status 2).
// ok is false when the command is to stop with code.
func parseFlags(fs *flag.FlagSet, usage string, args []string, stdout, stderr io.Writer) (code int, ok bool) {
	fs.SetOutput(stderr) // for the flag package's own error line
	fs.Usage = func() {}
	err := fs.Parse(args)
	switch {
	case err == nil:
		return 0, true
	case errors.Is(err, flag.ErrHelp):
		printUsage(fs, usage, stdout)
		return 0, false
	}
	fmt.Fprintln(stderr)
	printUsage(fs, usage, stderr)
	return 2, false
}

func printUsage(fs *flag.FlagSet, usage string, w io.Writer) {
	fmt.Fprint(w, usage)
	fs.SetOutput(w)
	fs.PrintDefaults()
}

// fail prints err, one line per problem (config.Errors has one per line).
func fail(w io.Writer, prefix string, err error) {
	for _, line := range strings.Split(err.Error(), "\n") {
		fmt.Fprintf(w, "%s: %s\n", prefix, line)
	}
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
