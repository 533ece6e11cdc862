package dnssetup

import (
	"crypto"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"facteur/internal/dkim"
)

// matchKey tells whether a DKIM key record (RFC 6376 3.6.1) publishes k's
// public key, and if not, what is wrong with it.
func matchKey(k *dkim.Key, record string) error {
	tags := parseTags(record)
	if v, ok := tags["v"]; ok && v != "DKIM1" {
		return fmt.Errorf("v=%s, want DKIM1", v)
	}
	alg := tags["k"]
	if alg == "" {
		alg = "rsa"
	}
	if alg != k.Algorithm() {
		return fmt.Errorf("k=%s, but the key is %s", alg, k.Algorithm())
	}
	p, ok := tags["p"]
	switch {
	case !ok:
		return errors.New("no p= tag")
	case p == "":
		return errors.New("p= is empty, which revokes the key")
	}
	der, err := base64.StdEncoding.DecodeString(p)
	if err != nil {
		return fmt.Errorf("p= is not base64: %v", err)
	}
	pub, err := parsePublic(alg, der)
	if err != nil {
		return fmt.Errorf("p= is not a public key: %v", err)
	}
	if !k.Signer.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(pub) {
		return fmt.Errorf("p= is another key than the one in %s", k.File)
	}
	return nil
}

// parsePublic reads p=: an RSA key as SubjectPublicKeyInfo, or as the bare
// RSAPublicKey some signers publish, which verifiers accept too; an
// Ed25519 key as its 32 bytes (RFC 8463 4).
func parsePublic(alg string, der []byte) (crypto.PublicKey, error) {
	if alg == "ed25519" {
		if len(der) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("%d bytes, want %d", len(der), ed25519.PublicKeySize)
		}
		return ed25519.PublicKey(der), nil
	}
	if pub, err := x509.ParsePKIXPublicKey(der); err == nil {
		return pub, nil
	}
	return x509.ParsePKCS1PublicKey(der)
}

// parseTags reads a tag list ("v=DKIM1; k=rsa; p=..."), dropping the
// white space that RFC 6376 3.2 allows around and inside values.
func parseTags(s string) map[string]string {
	tags := map[string]string{}
	for spec := range strings.SplitSeq(s, ";") {
		name, value, ok := strings.Cut(spec, "=")
		if !ok {
			continue
		}
		tags[strings.TrimSpace(name)] = strings.Join(strings.Fields(value), "")
	}
	return tags
}
