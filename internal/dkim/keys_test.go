package dkim

import (
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func genWrite(t *testing.T, dir, domain, selector, alg string) *Key {
	t.Helper()
	s, err := Generate(alg, 1024)
	if err != nil {
		t.Fatal(err)
	}
	k, err := Write(dir, domain, selector, s, -1, -1)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestWriteThenLoad(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dkim")
	genWrite(t, dir, "Example.ORG", "r1", "rsa")
	genWrite(t, dir, "example.org", "e1", "ed25519")
	genWrite(t, dir, "other.test", "s", "ed25519")
	// Retired: any name not ending in .pem.
	if err := os.Rename(filepath.Join(dir, "other.test", "s.pem"), filepath.Join(dir, "other.test", "s.pem.old")); err != nil {
		t.Fatal(err)
	}

	ks, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, k := range ks.All() {
		got = append(got, k.Name()+" "+k.Algorithm())
	}
	if strings.Join(got, ",") != "e1._domainkey.example.org ed25519,r1._domainkey.example.org rsa" {
		t.Errorf("keys %q", got)
	}
	fi, err := os.Stat(filepath.Join(dir, "example.org", "r1.pem"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file: %v, %v; want mode 0600", fi, err)
	}
	if _, err := Write(dir, "example.org", "r1", ks.All()[0].Signer, -1, -1); !errors.Is(err, fs.ErrExist) {
		t.Errorf("Write over a key: %v, want it refused", err)
	}
}

func TestForUsesNearestParentWithKeys(t *testing.T) {
	dir := t.TempDir()
	genWrite(t, dir, "example.org", "s", "ed25519")
	genWrite(t, dir, "sub.other.test", "s", "ed25519")
	genWrite(t, dir, "xn--bcher-kva.test", "s", "ed25519")
	ks, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	for domain, want := range map[string]string{
		"example.org":      "example.org",
		"MX.Example.org.":  "example.org",
		"a.b.example.org":  "example.org",
		"sub.other.test":   "sub.other.test",
		"other.test":       "",
		"example.com":      "",
		"org":              "",
		"notexample.org":   "",
		"x.sub.other.test": "sub.other.test",
	} {
		var got string
		if k := ks.For(domain); len(k) > 0 {
			got = k[0].Domain
		}
		if got != want {
			t.Errorf("For(%q) = %q, want %q", domain, got, want)
		}
	}
}

func TestLoadNamesTheBadFile(t *testing.T) {
	for name, content := range map[string]string{
		"garbage":        "not a key",
		"wrong PEM type": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
	} {
		dir := t.TempDir()
		os.MkdirAll(filepath.Join(dir, "example.org"), 0o700)
		bad := filepath.Join(dir, "example.org", "bad.pem")
		os.WriteFile(bad, []byte(content), 0o600)
		if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("%s: %v, want an error naming %s", name, err, bad)
		}
	}
	if ks, err := Load(filepath.Join(t.TempDir(), "none")); err != nil || ks.Len() != 0 {
		t.Errorf("missing directory: %v, %v; want no keys", ks, err)
	}
}

func TestRecordHoldsThePublicKey(t *testing.T) {
	dir := t.TempDir()
	r := genWrite(t, dir, "example.org", "r", "rsa")
	e := genWrite(t, dir, "example.org", "e", "ed25519")
	for _, k := range []*Key{r, e} {
		rec := k.Record()
		_, p, ok := strings.Cut(rec, "; p=")
		der, err := base64.StdEncoding.DecodeString(p)
		if !ok || err != nil || !strings.HasPrefix(rec, "v=DKIM1; k="+k.Algorithm()+"; ") {
			t.Fatalf("record %q", rec)
		}
		switch s := k.Signer.(type) {
		case ed25519.PrivateKey:
			if string(der) != string(s.Public().(ed25519.PublicKey)) {
				t.Errorf("ed25519 record does not hold the raw public key")
			}
		case *rsa.PrivateKey:
			if len(der) < 128 || k.Bits() != 1024 {
				t.Errorf("rsa record: %d bytes, %d bits", len(der), k.Bits())
			}
		}
	}
}

func TestGenerateRefusesWeakRSA(t *testing.T) {
	if _, err := Generate("rsa", 512); err == nil {
		t.Error("512-bit RSA key made")
	}
	if _, err := Generate("dsa", 0); err == nil {
		t.Error("unknown algorithm accepted")
	}
	if got := DefaultSelector(time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC), "ed25519"); got != "202612e" {
		t.Errorf("selector %q", got)
	}
}
