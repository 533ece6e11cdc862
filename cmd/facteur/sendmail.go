package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os/user"
	"path/filepath"
	"time"

	"facteur/internal/config"
	"facteur/internal/maildrop"
	"facteur/internal/sendmail"
)

// sendmailCmd is `facteur sendmail` and the `sendmail` name: the message
// goes to the running server's relay listener, or, when the server is
// down, into the maildrop it reads at start.
func sendmailCmd(args []string, stdin io.Reader, stderr io.Writer) int {
	o, err := sendmail.ParseArgs(args)
	if err != nil {
		fmt.Fprintf(stderr, "sendmail: %v\n", err)
		return sendmail.ExUsage
	}
	if o.ConfigFile == "" {
		o.ConfigFile = config.DefaultFile()
	}
	cfg, err := config.Load(o.ConfigFile, config.Switches{})
	if err != nil {
		fmt.Fprintf(stderr, "sendmail: %v\n", err)
		return sendmail.ExConfig
	}
	sender := o.From
	if sender == "" {
		sender = "root@" + cfg.Hostname
		if u, err := user.Current(); err == nil {
			sender = u.Username + "@" + cfg.Hostname
		}
	}
	m, err := sendmail.Compose(stdin, o, sender, cfg.Hostname, time.Now())
	if err != nil {
		fmt.Fprintf(stderr, "sendmail: %v\n", err)
		if errors.Is(err, sendmail.ErrNoRecipients) {
			return sendmail.ExUsage
		}
		return sendmail.ExDataErr
	}
	err = sendmail.ErrNotRunning
	if len(cfg.Listen.Relay) > 0 {
		err = sendmail.Submit(dialable(cfg.Listen.Relay[0]), m)
	}
	if errors.Is(err, sendmail.ErrNotRunning) {
		dir := filepath.Join(cfg.DataDir, "maildrop")
		if _, derr := maildrop.Drop(dir, maildrop.Envelope{From: m.From, Rcpts: m.Rcpts}, m.Data); derr != nil {
			fmt.Fprintf(stderr, "sendmail: %v, and the message could not be left for it: %v\n", err, derr)
			return sendmail.ExTempFail
		}
		fmt.Fprintf(stderr, "sendmail: facteur is not running; the message waits in %s and goes out when it starts\n", dir)
		return sendmail.ExOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "sendmail: %v\n", err)
	}
	return sendmail.ExitCode(err)
}

// dialable turns a listen address into one to connect to: a wildcard
// host means this machine.
func dialable(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
		if ip != nil && ip.To4() == nil {
			host = "::1"
		}
	}
	return net.JoinHostPort(host, port)
}
