package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"facteur/internal/smtptest"
)

// setPassword runs `facteur passwd` the way a script would.
func (in *instance) setPassword(user, pw string) {
	in.t.Helper()
	cmd := exec.Command(binary, "passwd", "--config", "facteur.toml", user)
	cmd.Dir = in.dir
	cmd.Stdin = strings.NewReader(pw + "\n" + pw + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		in.t.Fatalf("facteur passwd: %v\n%s", err, out)
	}
}

func (in *instance) certPool() *x509.CertPool {
	in.t.Helper()
	pem, err := os.ReadFile(filepath.Join(in.dir, "var", "tls", "cert.pem"))
	if err != nil {
		in.t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return pool
}

func TestSubmissionWithAUTHRelaysToRemoteMX(t *testing.T) {
	w := newRelayWorld(t, "")
	w.twoMX()
	mx := w.mx("127.0.0.2", smtptest.MXOptions{})
	submit := w.submit
	w.setPassword("alice", "correct horse")
	w.start()

	tlsc := &tls.Config{RootCAs: w.certPool(), ServerName: "mx.example.test"}
	c, err := smtp.DialStartTLS(submit, tlsc)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = c.Auth(sasl.NewPlainClient("", "alice", "wrong"))
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 535 || se.EnhancedCode != (smtp.EnhancedCode{5, 7, 8}) {
		t.Fatalf("wrong password: %v", err)
	}
	if err := c.Auth(sasl.NewPlainClient("", "alice", "correct horse")); err != nil {
		t.Fatal(err)
	}
	err = c.Mail("bob@example.test", nil)
	if !errors.As(err, &se) || se.Code != 553 {
		t.Fatalf("forged sender: %v", err)
	}
	if err := c.SendMail("alice@example.test", []string{"friend@remote.test"}, strings.NewReader(message)); err != nil {
		t.Fatal(err)
	}
	mx.Wait(t, 1, 20*time.Second)
	if got := string(mx.Messages()[0].Data); !strings.Contains(got, "with ESMTPSA id") {
		t.Errorf("relayed message:\n%s", got)
	}

	// Without AUTH the same listener relays nothing.
	d, err := smtp.DialStartTLS(submit, tlsc)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	err = d.SendMail("alice@example.test", []string{"friend@remote.test"}, strings.NewReader(message))
	if !errors.As(err, &se) || se.Code != 530 {
		t.Fatalf("unauthenticated submission: %v", err)
	}
}

func TestSIGHUPReloadsPasswordsAndCertificate(t *testing.T) {
	in := setup(t, "")
	in.start()
	tlsc := &tls.Config{InsecureSkipVerify: true}
	first := peerCert(t, in.smtps, tlsc)

	in.setPassword("alice", "new password")
	ca := smtptest.NewCA(t, "mx.example.test")
	// A restart would take the certificate from the config; a reload
	// re-reads the files in force, so replace them in place.
	in.writeFile("var/tls/cert.pem", string(ca.CertPEM))
	in.writeFile("var/tls/key.pem", string(ca.KeyPEM))
	in.cmd.Process.Signal(syscall.SIGHUP)
	waitLog(t, in, "reload: certificate")
	waitLog(t, in, "accounts=1")

	if second := peerCert(t, in.smtps, tlsc); second.Equal(first) {
		t.Error("the certificate served did not change after SIGHUP")
	}
	c, err := smtp.DialTLS(in.smtps, &tls.Config{RootCAs: ca.Pool(), ServerName: "mx.example.test"})
	if err != nil {
		t.Fatalf("new certificate does not verify: %v", err)
	}
	defer c.Close()
	if err := c.Auth(sasl.NewPlainClient("", "alice", "new password")); err != nil {
		t.Fatalf("password set after start not accepted after SIGHUP: %v", err)
	}
}

func peerCert(t *testing.T, addr string, cfg *tls.Config) *x509.Certificate {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0]
}
