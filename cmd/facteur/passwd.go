package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"

	"facteur/internal/config"
	"facteur/internal/passwd"
)

// passwdCmd sets a submission password: typed twice at a terminal, or two
// lines on standard input for scripts.
func passwdCmd(args []string, stdin *os.File, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("facteur passwd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("config", config.DefaultFile(), "configuration `FILE` (TOML)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: facteur passwd [--config FILE] USER")
		return 2
	}
	cfg, err := config.Load(*file, config.Switches{})
	if err != nil {
		fmt.Fprintf(stderr, "facteur: %v\n", err)
		return 2
	}
	pw, err := readTwice(stdin, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "facteur passwd: %v\n", err)
		return 1
	}
	if err := passwd.Set(cfg.PasswordsFile, fs.Arg(0), pw); err != nil {
		fmt.Fprintf(stderr, "facteur passwd: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "password of %s set in %s; send SIGHUP to a running facteur (systemctl reload facteur)\n",
		fs.Arg(0), cfg.PasswordsFile)
	return 0
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
	if first == "" {
		return "", errors.New("empty password")
	}
	return first, nil
}
