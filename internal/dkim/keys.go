// Package dkim holds the domains' signing keys (RFC 6376, RSA and Ed25519
// as RFC 8463) and signs outgoing mail with them.
//
// Keys live in one directory as <dir>/<domain>/<selector>.pem. Every .pem
// key of a domain signs, so dual RSA and Ed25519 signing, and a rotation
// with overlap, are two files; a key renamed to anything else is retired.
package dkim

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/net/idna"
)

// MinRSABits is the smallest RSA key that verifiers accept (RFC 8301 3.2).
const MinRSABits = 1024

// Key is one private key and where it is published.
type Key struct {
	Domain   string // lower case, without the final dot
	Selector string
	File     string
	Signer   crypto.Signer // *rsa.PrivateKey or ed25519.PrivateKey
}

// Algorithm is "rsa" or "ed25519", as the k= tag of the DNS record says.
func (k *Key) Algorithm() string {
	if _, ok := k.Signer.(ed25519.PrivateKey); ok {
		return "ed25519"
	}
	return "rsa"
}

// Bits is the RSA modulus size, or 256 for Ed25519.
func (k *Key) Bits() int {
	if r, ok := k.Signer.(*rsa.PrivateKey); ok {
		return r.N.BitLen()
	}
	return 256
}

// Name is the DNS name of the key record, without the final dot.
func (k *Key) Name() string { return k.Selector + "._domainkey." + k.Domain }

// Record is the TXT record's value to publish at Name (RFC 6376 3.6.1):
// the public key, for RSA as SubjectPublicKeyInfo, for Ed25519 as the raw
// 32 bytes (RFC 8463 4).
func (k *Key) Record() string {
	var der []byte
	switch pub := k.Signer.Public().(type) {
	case ed25519.PublicKey:
		der = pub
	default:
		der, _ = x509.MarshalPKIXPublicKey(pub) // only fails for key types Parse refuses
	}
	return fmt.Sprintf("v=DKIM1; k=%s; p=%s", k.Algorithm(), base64.StdEncoding.EncodeToString(der))
}

// Keys are the keys of every domain, as loaded from a directory; a Keys is
// never changed, and a reload makes a new one.
type Keys struct {
	byDomain map[string][]*Key
}

// Load reads every <dir>/<domain>/<selector>.pem. A missing dir means no
// keys; a key that cannot be used is an error naming its file, so that a
// domain never quietly loses its signature.
func Load(dir string) (*Keys, error) {
	ks := &Keys{byDomain: map[string][]*Key{}}
	domains, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return ks, nil
	}
	if err != nil {
		return nil, fmt.Errorf("dkim keys: %w", err)
	}
	for _, d := range domains {
		if !d.IsDir() {
			continue
		}
		files, err := os.ReadDir(filepath.Join(dir, d.Name()))
		if err != nil {
			return nil, fmt.Errorf("dkim keys: %w", err)
		}
		for _, f := range files {
			sel, ok := strings.CutSuffix(f.Name(), ".pem")
			if !ok || f.IsDir() {
				continue
			}
			k, err := loadKey(filepath.Join(dir, d.Name(), f.Name()), d.Name(), sel)
			if err != nil {
				return nil, err
			}
			ks.byDomain[k.Domain] = append(ks.byDomain[k.Domain], k)
		}
	}
	return ks, nil
}

func loadKey(file, domain, selector string) (*Key, error) {
	domain = strings.TrimSuffix(strings.ToLower(domain), ".")
	if !validName(domain) || !strings.Contains(domain, ".") {
		return nil, fmt.Errorf("dkim key %s: %q is not a domain name", file, domain)
	}
	if !validName(selector) {
		return nil, fmt.Errorf("dkim key %s: %q is not a selector (letters, digits, '-' and '.')", file, selector)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("dkim key: %w", err)
	}
	signer, err := ParsePEM(b)
	if err != nil {
		return nil, fmt.Errorf("dkim key %s: %w", file, err)
	}
	return &Key{Domain: domain, Selector: selector, File: file, Signer: signer}, nil
}

// ParsePEM reads a private key in PKCS#8 PEM (also PKCS#1 "RSA PRIVATE
// KEY", as older DKIM signers wrote).
func ParsePEM(b []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("PEM block %q, want PRIVATE KEY (PKCS#8)", block.Type)
	}
	if err != nil {
		return nil, err
	}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		if k.N.BitLen() < MinRSABits {
			return nil, fmt.Errorf("RSA key of %d bits, verifiers want at least %d", k.N.BitLen(), MinRSABits)
		}
		return k, nil
	case ed25519.PrivateKey:
		return k, nil
	}
	return nil, fmt.Errorf("%T key, want RSA or Ed25519", key)
}

// validName accepts the letters, digits, hyphens and dots of DNS names,
// which also keeps a key's path inside its directory.
func validName(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			return false
		}
	}
	return true
}

// For returns the keys that sign mail from domain: its own, else those of
// its nearest parent domain that has keys (relaxed alignment, RFC 7489
// 3.1.1), so mail from MAILER-DAEMON@mx.example.org is signed for
// example.org. None when no domain on the way has a key.
func (ks *Keys) For(domain string) []*Key {
	// Key directories are DNS names, so a From domain written in Unicode
	// (SMTPUTF8 mail) is looked up in its ASCII form.
	if a, err := idna.Lookup.ToASCII(domain); err == nil {
		domain = a
	}
	d := strings.TrimSuffix(strings.ToLower(domain), ".")
	for d != "" {
		if k := ks.byDomain[d]; len(k) > 0 {
			return k
		}
		_, d, _ = strings.Cut(d, ".")
		if !strings.Contains(d, ".") {
			break // a top-level domain is never a signing domain
		}
	}
	return nil
}

// All lists every key, by domain then selector.
func (ks *Keys) All() []*Key {
	var all []*Key
	for _, k := range ks.byDomain {
		all = append(all, k...)
	}
	slices.SortFunc(all, func(a, b *Key) int {
		return strings.Compare(a.Domain+" "+a.Selector, b.Domain+" "+b.Selector)
	})
	return all
}

// Len is the number of keys.
func (ks *Keys) Len() int {
	n := 0
	for _, k := range ks.byDomain {
		n += len(k)
	}
	return n
}
