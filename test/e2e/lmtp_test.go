package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"facteur/internal/smtptest"
)

// TestLMTPDelivery: with [delivery] lmtp set, mail for local users is
// queued (the 250 comes first) and handed to the LMTP server by the queue;
// a server that is down keeps it queued until it is back, and each
// recipient gets the server's own reply: a full mailbox bounces alone.
// The real Dovecot plays the server in test/interop/lmtp.sh.
func TestLMTPDelivery(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "lmtp")
	w := newRelayWorld(t, fmt.Sprintf("min_backoff = \"1h\"\nmax_backoff = \"2h\"\n[delivery]\nlmtp = %q\nlmtp_recipient = \"address\"\n", "unix:"+sock))
	w.start()

	// The server is down: the message is taken all the same, and waits.
	if err := send(w.smtp, "alice@example.test", []string{"alice@example.test"}, message); err != nil {
		t.Fatalf("with the LMTP server down: %v", err)
	}
	w.waitQueue(func(s string) bool { return strings.Contains(s, "connection failed") && strings.Contains(s, "in 59m") }, "holding the message")

	srv := smtptest.NewLMTP(t, "unix", sock, nil, func(rcpt string) *smtp.SMTPError {
		if rcpt == "robert@example.test" {
			return &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 2, 2}, Message: "Quota exceeded (mailbox for user is full)"}
		}
		return nil
	})
	w.facteur("queue", "--config", "facteur.toml", "flush")
	w.waitQueue(emptyQueue, "empty once the server is back")
	if got := srv.Delivered("alice@example.test"); len(got) != 1 {
		t.Fatalf("alice has %d messages, want 1", len(got))
	}

	// alice's copy is stored, bob's full mailbox (robert) bounces to the
	// sender, through the LMTP server too.
	if err := send(w.smtp, "alice@example.test", []string{"alice@example.test", "bob@example.test"}, message); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for len(srv.Delivered("alice@example.test")) < 3 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	got := srv.Delivered("alice@example.test")
	if len(got) != 3 {
		t.Fatalf("alice has %d messages, want her copy and the bounce besides the first", len(got))
	}
	copy, bounce := string(got[1]), string(got[2])
	if strings.Contains(copy, "Delivery Status Notification") {
		copy, bounce = bounce, copy
	}
	for _, want := range []string{"Delivered-To: alice@example.test\r\n", "Authentication-Results: mx.example.test;", "Subject: e2e"} {
		if !strings.Contains(copy, want) {
			t.Errorf("alice's copy lacks %q:\n%s", want, copy)
		}
	}
	for _, want := range []string{"Final-Recipient: rfc822; bob@example.test", "Status: 5.2.2", "Diagnostic-Code: smtp; 552 5.2.2"} {
		if !strings.Contains(bounce, want) {
			t.Errorf("bounce lacks %q:\n%s", want, bounce)
		}
	}
	if n := len(srv.Delivered("robert@example.test")); n != 0 {
		t.Errorf("robert has %d messages", n)
	}
	w.waitQueue(emptyQueue, "empty")
}
