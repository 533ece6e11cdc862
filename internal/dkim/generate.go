package dkim

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"facteur/internal/durable"
)

// DefaultRSABits is the size keygen gives a new RSA key.
const DefaultRSABits = 2048

// Generate makes a new key: algorithm "rsa" (bits 0 means DefaultRSABits)
// or "ed25519".
func Generate(algorithm string, bits int) (crypto.Signer, error) {
	switch algorithm {
	case "rsa":
		if bits == 0 {
			bits = DefaultRSABits
		}
		if bits < MinRSABits {
			return nil, fmt.Errorf("dkim: RSA keys of %d bits are refused by verifiers, use at least %d", bits, MinRSABits)
		}
		return rsa.GenerateKey(rand.Reader, bits)
	case "ed25519":
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	}
	return nil, fmt.Errorf("dkim: unknown algorithm %q (want rsa or ed25519)", algorithm)
}

// DefaultSelector names a key by its month and algorithm ("202612r",
// "202612e"), so that a rotation next month does not clash with it.
func DefaultSelector(now time.Time, algorithm string) string {
	return now.Format("200601") + algorithm[:1]
}

// Write saves signer as <dir>/<domain>/<selector>.pem in PKCS#8 PEM, mode
// 0600, durably, and never over an existing key: replacing a published key
// would break every signature still in flight. uid and gid own the file and
// the directories made when not -1. It returns the Key as Load would.
func Write(dir, domain, selector string, signer crypto.Signer, uid, gid int) (*Key, error) {
	domain = strings.TrimSuffix(strings.ToLower(domain), ".")
	if !validName(domain) || !strings.Contains(domain, ".") {
		return nil, fmt.Errorf("dkim: %q is not a domain name", domain)
	}
	if !validName(selector) {
		return nil, fmt.Errorf("dkim: %q is not a selector (letters, digits, '-' and '.')", selector)
	}
	der, err := x509.MarshalPKCS8PrivateKey(signer)
	if err != nil {
		return nil, fmt.Errorf("dkim: encode key: %w", err)
	}
	ddir := filepath.Join(dir, domain)
	for _, d := range []string{dir, ddir} {
		if err := os.Mkdir(d, 0o700); err == nil {
			if uid != -1 || gid != -1 {
				if err := os.Chown(d, uid, gid); err != nil {
					return nil, fmt.Errorf("dkim: %w", err)
				}
			}
		} else if !os.IsExist(err) {
			return nil, fmt.Errorf("dkim: %w", err)
		}
	}
	file := filepath.Join(ddir, selector+".pem")
	data := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if err := writeNew(file, data, uid, gid); err != nil {
		return nil, fmt.Errorf("dkim: %w", err)
	}
	return &Key{Domain: domain, Selector: selector, File: file, Signer: signer}, nil
}

// writeNew writes data to a new file, mode 0600, complete and synced before
// its name appears, and fails if the name exists.
func writeNew(file string, data []byte, uid, gid int) error {
	f, err := os.CreateTemp(filepath.Dir(file), ".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	err = f.Chown(uid, gid)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = durable.RenameNoReplace(tmp, file)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return durable.SyncDir(filepath.Dir(file))
}
