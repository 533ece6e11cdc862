package main

import (
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"time"

	"facteur/internal/config"
	"facteur/internal/dkim"
	"facteur/internal/zone"
)

const dkimUsage = `usage: facteur dkim keygen --domain D [--selector S] [--algorithm rsa|ed25519] [--bits N] [--config FILE]

Writes a new signing key to <keys_dir>/D/S.pem and prints the TXT record
to publish. Every key of a domain signs: for RSA and Ed25519 together, run
it twice. Send SIGHUP to a running facteur (systemctl reload facteur).

flags:
`

// dkimCmd is `facteur dkim keygen`.
func dkimCmd(args []string, stdout, stderr io.Writer) int {
	fs, file := newFlags("dkim keygen")
	domain := fs.String("domain", "", "the signing `DOMAIN` (d=), that of the From addresses or a parent")
	selector := fs.String("selector", "", "the key's `SELECTOR` (s=); default: the month and algorithm, e.g. 202612r")
	alg := fs.String("algorithm", "rsa", "rsa or ed25519")
	bits := fs.Int("bits", 0, fmt.Sprintf("RSA key size (default %d)", dkim.DefaultRSABits))
	sub := ""
	if len(args) > 0 && args[0] == "keygen" {
		sub, args = args[0], args[1:]
	}
	if code, ok := parseFlags(fs, dkimUsage, args, stdout, stderr); !ok {
		return code
	}
	if sub == "" || *domain == "" || fs.NArg() > 0 {
		printUsage(fs, dkimUsage, stderr)
		return 2
	}
	if *bits != 0 && *alg != "rsa" {
		fmt.Fprintln(stderr, "facteur dkim keygen: --bits is for RSA keys only")
		return 2
	}
	cfg, err := config.Load(*file, config.Switches{})
	if err != nil {
		fail(stderr, "facteur", err)
		return 2
	}
	if *selector == "" {
		*selector = dkim.DefaultSelector(time.Now(), *alg)
	}
	uid, gid, err := keyOwner(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "facteur dkim keygen: %v\n", err)
		return 1
	}
	signer, err := dkim.Generate(*alg, *bits)
	if err == nil {
		// keys_dir itself is made by Write, private; its parent may be a
		// data_dir that serve has not made yet.
		err = os.MkdirAll(filepath.Dir(cfg.DKIM.KeysDir), 0o755)
	}
	var k *dkim.Key
	if err == nil {
		k, err = dkim.Write(cfg.DKIM.KeysDir, *domain, *selector, signer, uid, gid)
	}
	if err != nil {
		fmt.Fprintf(stderr, "facteur dkim keygen: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "; %s key %s written; publish this record, then reload facteur:\n", k.Algorithm(), k.File)
	fmt.Fprintln(stdout, zone.TXT(k.Name(), k.Record()))
	return 0
}

// keyOwner is the account a key written by root must belong to, so that
// facteur still reads it after leaving root; -1, -1 keeps the writer's.
func keyOwner(cfg *config.Config) (uid, gid int, err error) {
	if os.Geteuid() != 0 || cfg.RunAsRoot {
		return -1, -1, nil
	}
	u, err := user.Lookup(cfg.User)
	if err != nil && cfg.File == "" && !cfg.Explicit("user") {
		return -1, -1, nil // built-in defaults: serve stays root too
	}
	if err != nil {
		return 0, 0, fmt.Errorf("the key must belong to user %q, whom facteur runs as: %w", cfg.User, err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("user %q: bad uid or gid", cfg.User)
	}
	return uid, gid, nil
}
