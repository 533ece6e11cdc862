package config

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
)

// Switches are the command-line switches kept from the older C daemons.
// Set ones override the file.
type Switches struct {
	Port        int    // -p: port of the smtp listeners
	Iface       string // -i: bind smtp and smtps to this interface's addresses
	Loopback    bool   // -l: every listener on loopback only (the relay included)
	LogFile     string // -j
	LogLevel    string // -n: 0-3 or a level name
	MaildirRoot string // -d
	UsersFile   string // -u
}

// Register declares the switches on fs.
func (s *Switches) Register(fs *flag.FlagSet) {
	fs.IntVar(&s.Port, "p", 0, "`PORT` of the smtp listeners (overrides listen.smtp ports)")
	fs.StringVar(&s.Iface, "i", "", "bind smtp and smtps to the addresses of interface `IFACE`")
	fs.BoolVar(&s.Loopback, "l", false, "listen on loopback only (relay on loopback)")
	fs.StringVar(&s.LogFile, "j", "", "write the log to `LOGFILE`")
	fs.StringVar(&s.LogLevel, "n", "", "log `LEVEL`: 0-3 (error, warn, info, debug) or a name")
	fs.StringVar(&s.MaildirRoot, "d", "", "maildir root `DIR` (user U's mail: DIR/U/Maildir)")
	fs.StringVar(&s.UsersFile, "u", "", "users map `FILE`")
}

func (s Switches) apply(c *Config) error {
	if s.LogFile != "" {
		c.Log.File = s.LogFile
	}
	if s.LogLevel != "" {
		if _, err := ParseLevel(s.LogLevel); err != nil {
			return fmt.Errorf("-n: %w", err)
		}
		c.Log.Level = s.LogLevel
	}
	if s.MaildirRoot != "" {
		c.MaildirRoot = s.MaildirRoot
	}
	if s.UsersFile != "" {
		c.UsersFile = s.UsersFile
		c.explicit["users_file"] = true
	}
	if s.Iface != "" {
		ips, err := ifaceAddrs(s.Iface)
		if err != nil {
			return fmt.Errorf("-i %s: %w", s.Iface, err)
		}
		c.Listen.SMTP = rehost(c.Listen.SMTP, ips)
		c.Listen.SMTPS = rehost(c.Listen.SMTPS, ips)
	}
	if s.Loopback {
		lo := []string{"127.0.0.1"}
		c.Listen.SMTP = rehost(c.Listen.SMTP, lo)
		c.Listen.SMTPS = rehost(c.Listen.SMTPS, lo)
		c.Listen.Relay = rehost(c.Listen.Relay, lo)
		c.Listen.Submission = rehost(c.Listen.Submission, lo)
	}
	if s.Port != 0 {
		if s.Port < 0 || s.Port > 65535 {
			return fmt.Errorf("-p %d: not a port number", s.Port)
		}
		for i, a := range c.Listen.SMTP {
			host, _, err := net.SplitHostPort(a)
			if err != nil {
				return fmt.Errorf("listen.smtp: %q: %w", a, err)
			}
			c.Listen.SMTP[i] = net.JoinHostPort(host, strconv.Itoa(s.Port))
		}
	}
	return nil
}

// rehost keeps the ports of addrs and puts them on each of ips instead.
func rehost(addrs, ips []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, a := range addrs {
		_, port, err := net.SplitHostPort(a)
		if err != nil {
			out = append(out, a) // validate names it
			continue
		}
		for _, ip := range ips {
			na := net.JoinHostPort(ip, port)
			if !seen[na] {
				seen[na] = true
				out = append(out, na)
			}
		}
	}
	return out
}

func ifaceAddrs(name string) ([]string, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return nil, err
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return nil, err
	}
	var ips []string
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok || ipn.IP.IsLinkLocalUnicast() {
			continue
		}
		ips = append(ips, ipn.IP.String())
	}
	if len(ips) == 0 {
		return nil, errors.New("interface has no usable address")
	}
	return ips, nil
}

// ParseLevel reads a log level as the old -n switch did (0 error, 1 warn,
// 2 info, 3 debug) or by name.
func ParseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "0", "error":
		return slog.LevelError, nil
	case "1", "warn", "warning":
		return slog.LevelWarn, nil
	case "2", "info", "":
		return slog.LevelInfo, nil
	case "3", "debug":
		return slog.LevelDebug, nil
	}
	return 0, fmt.Errorf("%q is not a level (0-3, error, warn, info, debug)", s)
}
