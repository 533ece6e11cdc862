// Package tlsconf loads the server certificate (or makes a self-signed one
// on first run) and builds the one TLS configuration every listener uses.
package tlsconf

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"facteur/internal/durable"
)

// Store serves the current certificate and can swap it without a restart,
// so a renewed certificate is used by the next handshake.
type Store struct {
	dataDir, hostname string
	cert              atomic.Pointer[tls.Certificate]

	mu                sync.Mutex
	certFile, keyFile string
}

// Open loads certFile and keyFile. When both are empty it uses
// <dataDir>/tls/{cert,key}.pem, generating a self-signed pair for hostname
// there on first run and reusing it afterwards.
func Open(certFile, keyFile, dataDir, hostname string) (*Store, error) {
	s := &Store{dataDir: dataDir, hostname: hostname}
	if err := s.Use(certFile, keyFile); err != nil {
		return nil, err
	}
	return s, nil
}

// Use reads certFile and keyFile (again), or the self-signed pair when both
// are empty, making it anew when it is missing or near its end, and serves
// the certificate from the next handshake. On error the current one stays.
func (s *Store) Use(certFile, keyFile string) error {
	if certFile == "" && keyFile == "" {
		certFile, keyFile = selfSigned(s.dataDir)
		if needsNew(certFile, keyFile, time.Now()) {
			if err := generate(filepath.Dir(certFile), certFile, keyFile, s.hostname); err != nil {
				return err
			}
		}
	}
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return fmt.Errorf("tls: load %s, %s: %w", certFile, keyFile, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.certFile, s.keyFile = certFile, keyFile
	s.cert.Store(&c)
	return nil
}

// selfSignedLife is a little over a year, as certificate checkers expect;
// the pair is made again at a start within renewBefore of its end.
const (
	selfSignedLife = 397 * 24 * time.Hour
	renewBefore    = 30 * 24 * time.Hour
)

// needsNew tells whether the self-signed pair is missing or near its end.
func needsNew(certFile, keyFile string, now time.Time) bool {
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
	if errors.Is(err, fs.ErrNotExist) {
		return true
	}
	return err == nil && c.Leaf != nil && now.Add(renewBefore).After(c.Leaf.NotAfter)
}

func selfSigned(dataDir string) (cert, key string) {
	dir := filepath.Join(dataDir, "tls")
	return filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
}

// Inspect describes the certificate Open would serve, without making one:
// for check-config.
func Inspect(certFile, keyFile, dataDir string) (string, error) {
	if certFile == "" && keyFile == "" {
		certFile, keyFile = selfSigned(dataDir)
		if _, err := os.Stat(certFile); errors.Is(err, fs.ErrNotExist) {
			return "self-signed, made at first start in " + filepath.Dir(certFile), nil
		}
	}
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return "", fmt.Errorf("tls: load %s, %s: %w", certFile, keyFile, err)
	}
	return certFile + ": " + describe(&c), nil
}

// Leaf is the certificate Open would serve, without making one: nil when
// the self-signed pair is still to be made at first start.
func Leaf(certFile, keyFile, dataDir string) (*x509.Certificate, error) {
	if certFile == "" && keyFile == "" {
		certFile, keyFile = selfSigned(dataDir)
		if _, err := os.Stat(certFile); errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
	}
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: load %s, %s: %w", certFile, keyFile, err)
	}
	return c.Leaf, nil
}

// Describe names the certificate in force: subject, names and expiry,
// for the log and check-config.
func (s *Store) Describe() string { return describe(s.cert.Load()) }

func describe(c *tls.Certificate) string {
	leaf := c.Leaf
	if leaf == nil {
		return "unparsable certificate"
	}
	return fmt.Sprintf("subject %q, names %v, expires %s", leaf.Subject.CommonName, leaf.DNSNames,
		leaf.NotAfter.UTC().Format(time.DateOnly))
}

// Files names the certificate and key in use.
func (s *Store) Files() (cert, key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.certFile, s.keyFile
}

// Config is the server configuration: TLS 1.2 and newer, Go's default
// (AEAD, forward-secret) suites for 1.2, X25519 and P-256 for key exchange.
func (s *Store) Config() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
			tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		},
		CurvePreferences: []tls.CurveID{tls.X25519MLKEM768, tls.X25519, tls.CurveP256},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return s.cert.Load(), nil
		},
	}
}

func generate(dir, certFile, keyFile, hostname string) error {
	if err := durable.MkdirAll(dir); err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("tls: generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return fmt.Errorf("tls: serial: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: hostname, Organization: []string{"facteur self-signed"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(selfSignedLife),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{hostname, "localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return fmt.Errorf("tls: self-sign: %w", err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("tls: marshal key: %w", err)
	}
	// The key first: a cert without its key would stop the next start.
	if err := durable.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})); err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	if err := durable.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})); err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	return nil
}
