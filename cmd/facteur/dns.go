package main

import (
	"context"
	"fmt"
	"io"

	"facteur/internal/config"
	"facteur/internal/dkim"
	"facteur/internal/dnssetup"
	"facteur/internal/resolver"
	"facteur/internal/tlsconf"
)

const dnsUsage = `usage: facteur dns records|check [--config FILE] [DOMAIN...]

  records  print the DNS records the local domains (or DOMAINs) need, as
           zone-file lines with a comment each, and the MTA-STS policy
           file to serve at https://mta-sts.DOMAIN/.well-known/mta-sts.txt
  check    ask the configured resolver whether they are published (and
           fetch the MTA-STS policy), and print ok, warn or FAIL per check
           (exit 1 on a FAIL)

flags:
`

// dnsCmd prints the records the domains need (records), or asks the
// configured resolver whether they are published (check: exit 1 when a
// check fails).
func dnsCmd(args []string, stdout, stderr io.Writer) int {
	fs, file := newFlags("dns")
	sub := ""
	if len(args) > 0 && (args[0] == "records" || args[0] == "check") {
		sub, args = args[0], args[1:]
	}
	if code, ok := parseFlags(fs, dnsUsage, args, stdout, stderr); !ok {
		return code
	}
	if sub == "" {
		if fs.NArg() > 0 {
			fmt.Fprintf(stderr, "facteur dns: unknown command %q\n\n", fs.Arg(0))
		}
		printUsage(fs, dnsUsage, stderr)
		return 2
	}
	cfg, err := config.Load(*file, config.Switches{})
	if err != nil {
		fail(stderr, "facteur", err)
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
	cert, err := tlsconf.Leaf(cfg.TLS.Cert, cfg.TLS.Key, cfg.DataDir)
	if err != nil {
		fmt.Fprintf(stderr, "facteur: %v\n", err)
		return 2
	}
	setup := dnssetup.New(cfg, keys, cert)
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
	if cfg.Outbound.DNSSECTrusted {
		res.TrustAD()
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
