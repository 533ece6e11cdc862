package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"facteur/internal/config"
	"facteur/internal/dkim"
	"facteur/internal/dnssetup"
	"facteur/internal/resolver"
)

const dnsUsage = "usage: facteur dns records|check [--config FILE] [DOMAIN...]"

// dnsCmd prints the records the domains need (records), or asks the
// configured resolver whether they are published (check: exit 1 when a
// check fails).
func dnsCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "records" && args[0] != "check" {
		fmt.Fprintln(stderr, dnsUsage)
		return 2
	}
	sub := args[0]
	fs := flag.NewFlagSet("facteur dns "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("config", config.DefaultFile(), "configuration `FILE` (TOML)")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	cfg, err := config.Load(*file, config.Switches{})
	if err != nil {
		fmt.Fprintf(stderr, "facteur: %v\n", err)
		return 2
	}
	domains, err := dnssetup.Domains(cfg, fs.Args())
	if err != nil {
		fmt.Fprintf(stderr, "facteur dns: %v\n", err)
		return 2
	}
	keys, err := dkim.Load(cfg.DKIM.KeysDir)
	if err != nil {
		fmt.Fprintf(stderr, "facteur: %v\n", err)
		return 2
	}
	setup := dnssetup.New(cfg, keys)
	if sub == "records" {
		if err := dnssetup.Write(stdout, setup.Records(domains)); err != nil {
			fmt.Fprintf(stderr, "facteur dns: %v\n", err)
			return 1
		}
		return 0
	}
	res, err := resolver.New(cfg.DNS, 0)
	if err != nil {
		fmt.Fprintf(stderr, "facteur: %v\n", err)
		return 2
	}
	code := 0
	setup.Check(context.Background(), res, domains, func(r dnssetup.Result) {
		fmt.Fprintln(stdout, r)
		if r.Status == dnssetup.Fail {
			code = 1
		}
	})
	return code
}
