package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"golang.org/x/term"

	"facteur/internal/config"
	"facteur/internal/passwd"
	"facteur/internal/sysexits"
	"facteur/internal/users"
)

const passwdUsage = `usage: facteur passwd [--config FILE] USER

Sets the submission password of USER, a mailbox of the users map, in the
passwords file the configuration names: typed twice at a terminal, or two
lines on standard input. At least 8 characters.

flags:
`

// passwdCmd sets a submission password: typed twice at a terminal, or two
// lines on standard input for scripts.
func passwdCmd(args []string, stdin *os.File, stdout, stderr io.Writer) int {
	flags, file := newFlags("passwd")
	if code, ok := parseFlags(flags, passwdUsage, args, stdout, stderr); !ok {
		return code
	}
	if flags.NArg() != 1 {
		printUsage(flags, passwdUsage, stderr)
		return 2
	}
	user := flags.Arg(0)
	cfg, err := config.Load(*file, config.Switches{})
	if err != nil {
		fail(stderr, "facteur passwd", err)
		return sysexits.Config
	}
	// On built-in defaults the file would land in the working directory,
	// where no server may ever look.
	if cfg.File == "" {
		fmt.Fprintf(stderr, "facteur passwd: no configuration file (none of %s): give --config, so that the password goes where the server reads it\n",
			config.SearchOrder())
		return sysexits.Config
	}
	if err := isMailbox(cfg, user); err != nil {
		fmt.Fprintf(stderr, "facteur passwd: %v\n", err)
		return sysexits.NoUser
	}
	pw, err := readTwice(stdin, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "facteur passwd: %v\n", err)
		return sysexits.DataErr
	}
	if err := passwd.Set(cfg.PasswordsFile, user, pw); errors.Is(err, passwd.ErrTooShort) {
		fmt.Fprintf(stderr, "facteur passwd: %v\n", err)
		return sysexits.DataErr
	} else if err != nil {
		fmt.Fprintf(stderr, "facteur passwd: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "password of %s set in %s; a running facteur takes it within 3 seconds\n",
		user, cfg.PasswordsFile)
	return 0
}

// isMailbox tells why user cannot have an account: a login sends as its
// mailbox's addresses, so a name that is no mailbox could send as nobody.
func isMailbox(cfg *config.Config, user string) error {
	u, err := users.Load(cfg.UsersFile, cfg.Domains)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s is not a mailbox: the users map %s does not exist yet", user, cfg.UsersFile)
	}
	if err != nil {
		return err
	}
	if len(u.WithoutMailbox([]string{user})) > 0 {
		return fmt.Errorf("%s is not a mailbox of the users map %s: add it there first", user, cfg.UsersFile)
	}
	return nil
}

func readTwice(stdin *os.File, prompt io.Writer) (string, error) {
	var first, second string
	if fd := int(stdin.Fd()); term.IsTerminal(fd) {
		for i, dst := range []*string{&first, &second} {
			fmt.Fprint(prompt, [...]string{"Password: ", "Again: "}[i])
			b, err := term.ReadPassword(fd)
			fmt.Fprintln(prompt)
			if err != nil {
				return "", err
			}
			*dst = string(b)
		}
	} else {
		r := bufio.NewReader(stdin)
		for _, dst := range []*string{&first, &second} {
			line, err := r.ReadString('\n')
			if err != nil && (err != io.EOF || line == "") {
				return "", errors.New("want the password on two lines of standard input")
			}
			*dst = strings.TrimRight(line, "\r\n")
		}
	}
	if first != second {
		return "", errors.New("the two passwords differ")
	}
	return first, nil
}
