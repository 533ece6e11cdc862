package smtptest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"testing"
	"time"
)

// CA is a throwaway certificate authority and one server certificate it signed.
type CA struct {
	CAPEM   []byte // the CA certificate, for clients that load a pool from a file
	CertPEM []byte // the server certificate
	KeyPEM  []byte // the server certificate's private key (PKCS #8)

	pool *x509.CertPool
	cert tls.Certificate
}

// NewCA makes a CA and a server certificate valid for hosts, each a DNS name
// or an IP address; without hosts the certificate is for localhost and 127.0.0.1.
func NewCA(t testing.TB, hosts ...string) *CA {
	t.Helper()
	if len(hosts) == 0 {
		hosts = []string{"localhost", "127.0.0.1"}
	}
	caKey := newKey(t)
	// Backdated so that a clock slightly behind does not reject the certificates.
	notBefore := time.Now().Add(-time.Hour)
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: "facteur test CA"},
		NotBefore:             notBefore,
		NotAfter:              notBefore.Add(48 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatalf("smtptest: create CA certificate: %v", err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatalf("smtptest: parse CA certificate: %v", err)
	}

	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: serial(t),
		Subject:      pkix.Name{CommonName: hosts[0]},
		NotBefore:    notBefore,
		NotAfter:     notBefore.Add(48 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatalf("smtptest: create server certificate: %v", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("smtptest: marshal server key: %v", err)
	}

	ca := &CA{
		CAPEM:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		pool:    x509.NewCertPool(),
	}
	ca.pool.AddCert(caCert)
	ca.cert, err = tls.X509KeyPair(ca.CertPEM, ca.KeyPEM)
	if err != nil {
		t.Fatalf("smtptest: load server key pair: %v", err)
	}
	return ca
}

// ServerTLS returns a new server configuration with the server certificate.
func (ca *CA) ServerTLS() *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{ca.cert},
		MinVersion:   tls.VersionTLS12,
	}
}

// ChainTLS is ServerTLS sending the CA certificate after the server's, as a
// server authenticated by a DANE-TA record must (RFC 7672 3.1.2).
func (ca *CA) ChainTLS() *tls.Config {
	cfg := ca.ServerTLS()
	cert := cfg.Certificates[0]
	block, _ := pem.Decode(ca.CAPEM)
	cert.Certificate = append(cert.Certificate[:1:1], block.Bytes)
	cfg.Certificates[0] = cert
	return cfg
}

// Pool returns a pool that trusts only this CA.
func (ca *CA) Pool() *x509.CertPool {
	return ca.pool.Clone()
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("smtptest: generate key: %v", err)
	}
	return key
}

func serial(t testing.TB) *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		t.Fatalf("smtptest: serial number: %v", err)
	}
	return n
}
