package e2e

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"facteur/internal/smtptest"
)

// aliasWorld is facteur with an aliases file, and two domains elsewhere
// on the fake DNS: partner.test, that an alias forwards to (its MX on
// 127.0.0.2), and origin.test, whose users write to the alias (127.0.0.3).
func aliasWorld(t *testing.T) (w *relayWorld, partner, origin *smtptest.MX) {
	t.Helper()
	w = newRelayWorld(t, "")
	w.dns.MX("partner.test", 10, "mx.partner.test")
	w.dns.A("mx.partner.test", "127.0.0.2")
	w.dns.MX("origin.test", 10, "mx.origin.test")
	w.dns.A("mx.origin.test", "127.0.0.3")
	partner = w.mx("127.0.0.2", smtptest.MXOptions{})
	origin = w.mx("127.0.0.3", smtptest.MXOptions{})
	w.writeFile("aliases", "# a team of two here and a friend elsewhere\nsales: alice, bob, friend@partner.test\n")
	w.start()
	return w, partner, origin
}

// wantRefused checks that err is the reply code with the enhanced code
// enh ("5.1.1").
func wantRefused(t *testing.T, what string, err error, code int, enh string) {
	t.Helper()
	var se *smtp.SMTPError
	got := fmt.Sprint(err)
	if errors.As(err, &se) {
		got = fmt.Sprintf("%d %d.%d.%d", se.Code, se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2])
	}
	if want := fmt.Sprintf("%d %s", code, enh); got != want {
		t.Errorf("%s: got %s (%v), want %s", what, got, err, want)
	}
}

func TestAliasesForwardingAndSRS(t *testing.T) {
	w, partner, origin := aliasWorld(t)
	root := filepath.Join(w.dir, "var", "mail")
	body := "From: <someone@origin.test>\r\nTo: <sales@example.test>\r\nSubject: aliases\r\n\r\nFor the team.\r\n"
	if err := send(w.smtp, "someone@origin.test", []string{"sales@example.test"}, body); err != nil {
		t.Fatal(err)
	}
	// Each local one copy, straight away: the 250 came after them.
	for _, mb := range []string{"alice", "robert"} {
		got := maildirNew(t, root, mb)
		if len(got) != 1 || !strings.Contains(got[0], "\r\nDelivered-To: sales@example.test\r\n") || !strings.HasSuffix(got[0], body) {
			t.Fatalf("%s's mailbox: %q", mb, got)
		}
	}
	// The friend elsewhere through the queue, from an SRS address of ours.
	partner.Wait(t, 1, 10*time.Second)
	fwd := partner.Messages()[0]
	local, domain, _ := strings.Cut(fwd.From, "@")
	if !strings.HasPrefix(local, "SRS0=") || !strings.HasSuffix(local, "=origin.test=someone") || domain != "mx.example.test" {
		t.Fatalf("forwarded from <%s>", fwd.From)
	}
	if len(fwd.To) != 1 || fwd.To[0] != "friend@partner.test" || !strings.HasSuffix(string(fwd.Data), body) ||
		!strings.Contains(string(fwd.Data), "Delivered-To: sales@example.test\r\n") {
		t.Fatalf("forwarded: %+v", fwd)
	}

	// partner.test bounces it: the bounce reaches the original sender,
	// still from the null sender.
	dsn := "From: MAILER-DAEMON@partner.test\r\nSubject: Undelivered Mail\r\n\r\nfriend@partner.test: no such user\r\n"
	if err := send(w.smtp, "", []string{fwd.From}, dsn); err != nil {
		t.Fatalf("bounce to %s: %v", fwd.From, err)
	}
	origin.Wait(t, 1, 10*time.Second)
	back := origin.Messages()[0]
	if back.From != "" || len(back.To) != 1 || back.To[0] != "someone@origin.test" || !strings.HasSuffix(string(back.Data), dsn) {
		t.Fatalf("bounce passed on: %+v", back)
	}

	// A forged SRS address (another sender under the same signature, or
	// a signature made up) is no one.
	for _, forged := range []string{
		strings.Replace(fwd.From, "=someone@", "=victim@", 1),
		"SRS0=ABCDEF" + fwd.From[len("SRS0=ABCDEF"):],
	} {
		wantRefused(t, "bounce to "+forged, send(w.smtp, "", []string{forged}, dsn), 550, "5.1.1")
	}

	// A tag reaches its user, and the copy says for which address.
	if err := send(w.smtp, "someone@origin.test", []string{"alice+news@example.test"}, message); err != nil {
		t.Fatal(err)
	}
	got := maildirNew(t, root, "alice")
	if len(got) != 2 || !strings.Contains(got[0]+got[1], "\r\nDelivered-To: alice+news@example.test\r\n") {
		t.Fatalf("alice's mailbox after +news: %q", got)
	}

	// The message comes back round: a mail loop.
	loop := "Delivered-To: sales@example.test\r\n" + body
	wantRefused(t, "loop", send(w.smtp, "someone@origin.test", []string{"sales@example.test"}, loop), 554, "5.4.6")
	if n := len(maildirNew(t, root, "robert")); n != 1 {
		t.Errorf("robert has %d messages after the loop, want 1", n)
	}
	// Only the forwarded message and the bounce went out.
	time.Sleep(200 * time.Millisecond)
	if partner.Count() != 1 || origin.Count() != 1 {
		t.Errorf("partner got %d, origin %d, want 1 each", partner.Count(), origin.Count())
	}
	// The key was made at the first forward, for the server's eyes only.
	if fi, err := os.Stat(filepath.Join(w.dir, "var", "srs.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("SRS key: %v %v", fi, err)
	}
}

func TestAliasesReloadAndCheckConfig(t *testing.T) {
	w, _, _ := aliasWorld(t)
	wantRefused(t, "before the edit", send(w.smtp, "someone@origin.test", []string{"team@example.test"}, message), 550, "5.1.1")
	// An edit is taken within seconds without a signal; a broken one is
	// not, and check-config says where it is broken.
	w.writeFile("aliases", "sales: alice\nteam: sales, bob\n")
	waitLog(t, w.instance, "reload: aliases")
	if err := send(w.smtp, "someone@origin.test", []string{"team@example.test"}, message); err != nil {
		t.Fatalf("after the edit: %v", err)
	}
	w.writeFile("aliases", "sales: alice\nteam: sales, staff\nstaff: team\n")
	waitLog(t, w.instance, "reload: aliases kept")
	if err := send(w.smtp, "someone@origin.test", []string{"team@example.test"}, message); err != nil {
		t.Fatalf("with the broken file, the old aliases stay: %v", err)
	}
	code, out := w.runAs(binary, "", "check-config", "--config", "facteur.toml")
	if code != 2 || !strings.Contains(out, "aliases:3: alias loop: staff@example.test -> team@example.test -> staff@example.test") {
		t.Errorf("check-config with a loop: exit %d\n%s", code, out)
	}
}
