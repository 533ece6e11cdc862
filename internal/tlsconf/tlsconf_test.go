package tlsconf

import (
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestSelfSignedMadeOnceAndRenewedNearItsEnd(t *testing.T) {
	dir := t.TempDir()
	s, err := Open("", "", dir, "mx.example.test")
	if err != nil {
		t.Fatal(err)
	}
	cert, key := s.Files()
	leaf := s.cert.Load().Leaf
	if leaf.Subject.CommonName != "mx.example.test" || leaf.NotAfter.Sub(leaf.NotBefore) > 400*24*time.Hour {
		t.Errorf("self-signed: %s valid %s", leaf.Subject.CommonName, leaf.NotAfter.Sub(leaf.NotBefore))
	}
	for _, f := range []string{cert, key} {
		if fi, err := os.Stat(f); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v", f, fi, err)
		}
	}
	again, _ := Open("", "", dir, "mx.example.test")
	if !again.cert.Load().Leaf.Equal(leaf) {
		t.Error("a second start made a new certificate")
	}
	if needsNew(cert, key, time.Now()) || !needsNew(cert, key, time.Now().Add(370*24*time.Hour)) {
		t.Error("renewal window wrong")
	}
	if !needsNew(filepath.Join(dir, "none.pem"), key, time.Now()) {
		t.Error("a missing pair is not made")
	}
}

func TestConfigRefusesOldTLS(t *testing.T) {
	s, err := Open("", "", t.TempDir(), "mx.example.test")
	if err != nil {
		t.Fatal(err)
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", s.Config())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	dial := func(max uint16) error {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", l.Addr().String(),
			&tls.Config{InsecureSkipVerify: true, MaxVersion: max})
		if err == nil {
			c.Close()
		}
		return err
	}
	if err := dial(tls.VersionTLS11); err == nil {
		t.Error("TLS 1.1 accepted")
	}
	if err := dial(tls.VersionTLS12); err != nil {
		t.Errorf("TLS 1.2 refused: %v", err)
	}
}

func TestUseSwapsFilesAndKeepsTheCertificateOnError(t *testing.T) {
	dir := t.TempDir()
	s, err := Open("", "", dir, "mx.example.test")
	if err != nil {
		t.Fatal(err)
	}
	selfSigned := s.cert.Load().Leaf
	other := filepath.Join(dir, "other")
	if err := generate(other, filepath.Join(other, "c.pem"), filepath.Join(other, "k.pem"), "other.example.test"); err != nil {
		t.Fatal(err)
	}
	if err := s.Use(filepath.Join(other, "c.pem"), filepath.Join(other, "k.pem")); err != nil {
		t.Fatal(err)
	}
	if cert, _ := s.Files(); cert != filepath.Join(other, "c.pem") || s.cert.Load().Leaf.Subject.CommonName != "other.example.test" {
		t.Errorf("after Use: files %s, serving %s", cert, s.cert.Load().Leaf.Subject.CommonName)
	}
	if err := s.Use(filepath.Join(dir, "missing.pem"), filepath.Join(other, "k.pem")); err == nil {
		t.Error("a missing certificate accepted")
	}
	if cert, _ := s.Files(); cert != filepath.Join(other, "c.pem") || s.cert.Load().Leaf.Subject.CommonName != "other.example.test" {
		t.Errorf("a failed Use changed what is served: %s", cert)
	}
	if err := s.Use("", ""); err != nil || !s.cert.Load().Leaf.Equal(selfSigned) {
		t.Errorf("back to the self-signed pair: %v", err)
	}
}
