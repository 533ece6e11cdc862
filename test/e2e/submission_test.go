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
	// A DKIM signature must never vouch for a From that is not the user's.
	err = c.SendMail("alice@example.test", []string{"friend@remote.test"}, strings.NewReader(message))
	if !errors.As(err, &se) || se.Code != 553 || se.EnhancedCode != (smtp.EnhancedCode{5, 7, 1}) {
		t.Fatalf("forged From: header: %v", err)
	}
	if out := w.queueList(); !emptyQueue(out) {
		t.Fatalf("the message with a forged From: was queued:\n%s", out)
	}
	fromAlice := strings.Replace(message, "From: <a@example.org>", "From: Alice <alice@example.test>", 1)
	if err := c.SendMail("alice@example.test", []string{"friend@remote.test"}, strings.NewReader(fromAlice)); err != nil {
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
	selfSigned := peerCert(t, in.smtps, tlsc)

	// From the self-signed pair to files named in the configuration.
	in.setPassword("alice", "new password")
	ca := smtptest.NewCA(t, "mx.example.test")
	in.writeFile("cert.pem", string(ca.CertPEM))
	in.writeFile("key.pem", string(ca.KeyPEM))
	in.writeFile("facteur.toml", readFile(t, filepath.Join(in.dir, "facteur.toml"))+"[tls]\ncert = \"cert.pem\"\nkey = \"key.pem\"\n")
	in.cmd.Process.Signal(syscall.SIGHUP)
	waitLog(t, in, `"reload: certificate" file=cert.pem`)
	waitLog(t, in, "accounts=1")

	if second := peerCert(t, in.smtps, tlsc); second.Equal(selfSigned) {
		t.Error("the certificate served did not change after SIGHUP")
	}
	c, err := smtp.DialTLS(in.smtps, &tls.Config{RootCAs: ca.Pool(), ServerName: "mx.example.test"})
	if err != nil {
		t.Fatalf("the certificate named by the reloaded configuration is not served: %v", err)
	}
	defer c.Close()
	if err := c.Auth(sasl.NewPlainClient("", "alice", "new password")); err != nil {
		t.Fatalf("password set after start not accepted after SIGHUP: %v", err)
	}

	// A renewal replaces the files in place (certbot).
	renewed := smtptest.NewCA(t, "mx.example.test")
	in.writeFile("cert.pem", string(renewed.CertPEM))
	in.writeFile("key.pem", string(renewed.KeyPEM))
	in.cmd.Process.Signal(syscall.SIGHUP)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c2, err := smtp.DialTLS(in.smtps, &tls.Config{RootCAs: renewed.Pool(), ServerName: "mx.example.test"})
		if err == nil {
			c2.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the renewed certificate is not served after SIGHUP: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
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

// An account is a mailbox of the users map, with a password that is not
// guessed in a minute; check-config and a reload name the accounts whose
// mailbox has gone.
func TestPasswdRefusesWhatCannotLogIn(t *testing.T) {
	in := setup(t, "") // users: alice, and bob@example.test to mailbox robert
	for _, tc := range []struct {
		user, pw string
		code     int
		want     string
	}{
		{"nosuchuser", "long enough", 67, "nosuchuser is not a mailbox of the users map"},
		{"bob", "long enough", 67, "bob is not a mailbox"},
		{"alice", "x", 65, "at least 8 characters"},
		{"alice", "1234567", 65, "at least 8 characters"},
	} {
		code, out := in.runAs(binary, tc.pw+"\n"+tc.pw+"\n", "passwd", "--config", "facteur.toml", tc.user)
		if code != tc.code || !strings.Contains(out, tc.want) {
			t.Errorf("passwd %s with %q: exit %d, want %d and %q: %s", tc.user, tc.pw, code, tc.code, tc.want, out)
		}
	}
	if _, err := os.Stat(filepath.Join(in.dir, "passwords")); !os.IsNotExist(err) {
		t.Fatal("a refused account wrote the passwords file")
	}
	in.setPassword("robert", "long enough")
	in.start()

	// robert's mailbox leaves the users map; alice's account is kept.
	in.setPassword("alice", "long enough")
	in.writeFile("users", "alice\n")
	code, out := in.runAs(binary, "", "check-config", "--config", "facteur.toml")
	if code != 0 || !strings.Contains(out, "robert: no such mailbox in the users map") || strings.Contains(out, "alice: no such") {
		t.Errorf("check-config: exit %d\n%s", code, out)
	}
	in.cmd.Process.Signal(syscall.SIGHUP)
	waitLog(t, in, `accounts with no mailbox in the users map: they can log in but send from no address" file=passwords users_file=users accounts=robert`)
}
