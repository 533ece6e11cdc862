package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os/user"
	"path/filepath"
	"strings"
	"time"

	"facteur/internal/config"
	"facteur/internal/maildrop"
	"facteur/internal/sendmail"
	"facteur/internal/sysexits"
)

const sendmailUsage = `usage: facteur sendmail [flags] [RCPT...] < message
       (or any name linked to facteur as sendmail)

Sends the message on standard input through the running server's relay
listener. Recipients the server refuses are named on standard error and in
a bounce to the sender; the others get the message (exit 0). When the
server is stopped, the message waits in its maildrop until it starts, and
so do recipients it puts off (4xx), taken up within seconds; with no
configuration file to name that maildrop, sendmail exits 75 (try later).

flags:
  -t            recipients from the To, Cc and Bcc headers too (Bcc is removed)
  -i, -oi       a line with a single dot does not end the message
  -f FROM       envelope sender (also -r); default: the user, at hostname
  -F NAME       the sender's name, for the From header added when missing
  -C FILE, --config FILE
                configuration file (TOML)
  --help        this text
  Other sendmails' flags (-o..., -B, -N, -R, -V, -bm, -v...) are accepted and
  ignored; -bs (SMTP on standard input) is not supported.
`

// sendmailCmd is `facteur sendmail` and the `sendmail` name: the message
// goes to the running server's relay listener, or, when the server is
// down, into the maildrop it reads at start.
func sendmailCmd(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	o, err := sendmail.ParseArgs(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, sendmailUsage)
		return sysexits.OK
	}
	if err != nil {
		fmt.Fprintf(stderr, "sendmail: %v\n\n%s", err, sendmailUsage)
		return sysexits.Usage
	}
	if o.ConfigFile == "" {
		o.ConfigFile = config.DefaultFile()
	}
	cfg, err := config.Load(o.ConfigFile, config.Switches{})
	if err != nil {
		fail(stderr, "sendmail", err)
		return sysexits.Config
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
			return sysexits.Usage
		}
		return sysexits.DataErr
	}
	if len(cfg.Listen.Relay) == 0 {
		return drop(cfg, m, sendmail.ErrNotRunning, stderr)
	}
	relay := dialable(cfg.Listen.Relay[0])
	d, err := sendmail.Send(relay, m)
	var refused *sendmail.RefusedError
	switch {
	case sendmail.Later(err):
		if !errors.Is(err, sendmail.ErrNotRunning) {
			fmt.Fprintf(stderr, "sendmail: %v\n", err)
		}
		return drop(cfg, m, err, stderr)
	case errors.As(err, &refused):
		d = &sendmail.Delivery{Refused: refused.Refused}
	case err != nil:
		fmt.Fprintf(stderr, "sendmail: %v\n", err)
		return sendmail.ExitCode(err)
	}
	// Recipients put off (4xx) wait in the maildrop, which the running
	// server takes up within seconds and queues, retries included: a
	// temporary refusal must not end in a bounce. Those refused for good
	// are named, and bounced if anyone gets the message.
	var later, failed []sendmail.Refusal
	for _, r := range d.Refused {
		if r.Later() {
			later = append(later, r)
		} else {
			failed = append(failed, r)
		}
	}
	if refused != nil && len(later) == 0 {
		for _, r := range failed {
			fmt.Fprintf(stderr, "sendmail: <%s>: %s\n", r.Rcpt, r.Reply())
		}
		return sendmail.ExitCode(err)
	}
	code := sysexits.OK
	if len(later) > 0 {
		rest := &sendmail.Message{From: m.From, Data: m.Data}
		for _, r := range later {
			fmt.Fprintf(stderr, "sendmail: <%s>: %s\n", r.Rcpt, r.Reply())
			rest.Rcpts = append(rest.Rcpts, r.Rcpt)
		}
		code = drop(cfg, rest, fmt.Errorf("the server put off %d recipients", len(later)), stderr)
	}
	if len(failed) > 0 {
		bounce(relay, cfg.Hostname, m, &sendmail.Delivery{ID: d.ID, Refused: failed}, stderr)
	}
	return code
}

// bounce names each refused recipient on stderr and in a bounce to the
// sender, through the server, like any mail.
func bounce(relay, hostname string, m *sendmail.Message, d *sendmail.Delivery, stderr io.Writer) {
	for _, r := range d.Refused {
		fmt.Fprintf(stderr, "sendmail: <%s>: %s; the other recipients get the message\n", r.Rcpt, r.Reply())
	}
	b, err := sendmail.Bounce(m, d, hostname, time.Now())
	if err == nil {
		_, err = sendmail.Submit(relay, b)
	}
	if err != nil {
		fmt.Fprintf(stderr, "sendmail: no bounce to <%s> about these: %v\n", m.From, err)
		return
	}
	fmt.Fprintf(stderr, "sendmail: a bounce tells <%s>\n", m.From)
}

// drop leaves m in the maildrop of a server that is not running, which
// takes it when it starts; why says why it is not sent now.
func drop(cfg *config.Config, m *sendmail.Message, why error, stderr io.Writer) int {
	// On built-in defaults the maildrop would be ./var/maildrop of
	// whatever directory this runs in (cron's): no server would read it.
	if cfg.File == "" {
		fmt.Fprintf(stderr, "sendmail: %v, and no configuration file (none of %s) names its maildrop: try again later\n",
			why, config.SearchOrder())
		return sysexits.TempFail
	}
	dir := filepath.Join(cfg.DataDir, "maildrop")
	if _, err := maildrop.Drop(dir, maildrop.Envelope{From: m.From, Rcpts: m.Rcpts}, m.Data); err != nil {
		fmt.Fprintf(stderr, "sendmail: %v, and the message could not be left for it: %v\n", why, err)
		return sysexits.TempFail
	}
	if errors.Is(why, sendmail.ErrNotRunning) {
		fmt.Fprintf(stderr, "sendmail: facteur is not running; the message waits in %s and goes out when it starts\n", dir)
	} else {
		fmt.Fprintf(stderr, "sendmail: the message waits in %s for %s; the server takes it up within seconds and retries\n",
			dir, strings.Join(m.Rcpts, ", "))
	}
	return sysexits.OK
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
