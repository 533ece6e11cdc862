// Package sendmail is the Unix mail submission interface that cron, PHP's
// mail(), git send-email and mutt call: sendmail's flags, the message on
// standard input, and the sysexits.h exit codes callers test.
package sendmail

import (
	"errors"
	"flag"
	"fmt"
	"strings"
)

// Options are the flags that change what is sent.
type Options struct {
	From        string   // -f: envelope sender; "" means the invoking user
	FullName    string   // -F: the sender's name, for a From: we add
	FromHeaders bool     // -t: recipients from To, Cc and Bcc
	IgnoreDots  bool     // -i, -oi: a line with a single dot does not end the message
	Rcpts       []string // the arguments
	ConfigFile  string   // --config, -C
}

// ParseArgs reads sendmail's command line; --help is flag.ErrHelp. Flags
// may carry their value attached ("-fme@x") or as the next argument; the
// -o family and the delivery-mode flags of other sendmails are accepted
// and ignored, as Postfix does, so existing callers keep working.
func ParseArgs(args []string) (Options, error) {
	var o Options
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			o.Rcpts = append(o.Rcpts, args[i+1:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			o.Rcpts = append(o.Rcpts, a)
			continue
		}
		value := func(flag string) (string, error) {
			if v := strings.TrimPrefix(a, flag); v != "" {
				return v, nil
			}
			if i+1 >= len(args) {
				return "", fmt.Errorf("%s needs a value", flag)
			}
			i++
			return args[i], nil
		}
		var err error
		switch {
		case a == "--help":
			// Not -h: other sendmails take it as a hop count.
			return o, flag.ErrHelp
		case strings.HasPrefix(a, "--config="):
			o.ConfigFile = strings.TrimPrefix(a, "--config=")
		case a == "--config":
			o.ConfigFile, err = value(a)
		case strings.HasPrefix(a, "-C"):
			o.ConfigFile, err = value("-C")
		case strings.HasPrefix(a, "-f"), strings.HasPrefix(a, "-r"):
			o.From, err = value(a[:2])
			o.From = strings.Trim(o.From, "<>")
		case strings.HasPrefix(a, "-F"):
			o.FullName, err = value("-F")
		case a == "-t":
			o.FromHeaders = true
		case a == "-i", a == "-oi":
			o.IgnoreDots = true
		case a == "-bs":
			return o, errors.New("-bs (SMTP on standard input) is not supported: talk SMTP to the relay listener instead")
		case a == "-B", a == "-N", a == "-R", a == "-V", a == "-X", a == "-O":
			// Body type, DSN, envelope id...: accepted for compatibility
			// with their value, and ignored.
			_, err = value(a)
		case a == "-bm", a == "-v", a == "-U", a == "-m", a == "-n", strings.HasPrefix(a, "-o"), strings.HasPrefix(a, "-O"),
			strings.HasPrefix(a, "-d"), strings.HasPrefix(a, "-B"), strings.HasPrefix(a, "-N"),
			strings.HasPrefix(a, "-R"), strings.HasPrefix(a, "-V"), strings.HasPrefix(a, "-X"):
			// Accepted for compatibility (as Postfix does); they change
			// nothing here.
		default:
			return o, fmt.Errorf("unknown flag %s", a)
		}
		if err != nil {
			return o, err
		}
	}
	return o, nil
}
