package courier

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"facteur/internal/queue"
	"facteur/internal/remote"
	"facteur/internal/smtptest"
	"facteur/internal/users"
)

const message = "From: a@sender.test\r\nSubject: hi\r\n\r\nhello\r\n"

func parcel(id string, rcpts ...string) *queue.Parcel {
	return &queue.Parcel{ID: id, From: "a@sender.test", Rcpts: rcpts, Size: int64(len(message)),
		Open: func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(message)), nil }}
}

// The users map names the mailbox; the LMTP server's reply to each
// mailbox settles the addresses that reach it, and no other: alice's copy
// is stored, bob's full mailbox bounces, carol's waits, and an address the
// map lacks (taken out since the message was queued) bounces without the
// server.
func TestLMTPPerRecipient(t *testing.T) {
	u, err := users.Parse(strings.NewReader("alice\nbob\ncarol\nal@example.org alice\n"), "users", []string{"example.org"})
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "lmtp")
	srv := smtptest.NewLMTP(t, "unix", sock, nil, func(rcpt string) *smtp.SMTPError {
		switch rcpt {
		case "bob@example.org":
			return &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 2, 2}, Message: "Quota exceeded (mailbox for user is full)"}
		case "carol@example.org":
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Temporary internal error"}
		}
		return nil
	})
	c := LMTP{
		Client:  &remote.LMTP{Address: "unix:" + sock, HeloName: "mx.example.org", ConnectTimeout: 2 * time.Second, Log: slog.New(slog.DiscardHandler)},
		Users:   func() *users.Map { return u },
		Address: true,
	}
	out := c.Deliver(context.Background(), "example.org", []*queue.Parcel{
		parcel("q1", "alice@example.org", "Bob@Example.org", "carol@example.org", "gone@example.org", "al@example.org"),
	})
	want := []struct {
		st   queue.Status
		code int
	}{{queue.Delivered, 250}, {queue.Permanent, 552}, {queue.Transient, 451}, {queue.Permanent, 550}, {queue.Delivered, 250}}
	for j, w := range want {
		r := out[0][j]
		if r.Status != w.st || r.Code != w.code || r.Rcpt != []string{"alice@example.org", "Bob@Example.org", "carol@example.org", "gone@example.org", "al@example.org"}[j] {
			t.Errorf("recipient %d: %+v, want %v %d", j, r, w.st, w.code)
		}
	}
	if out[0][1].Enhanced != "5.2.2" || !strings.Contains(out[0][1].Text, "Quota exceeded") {
		t.Errorf("bob: %+v, want the server's 5.2.2", out[0][1])
	}
	if n := len(srv.Delivered("alice@example.org")); n != 1 {
		t.Errorf("alice got %d copies, want 1 for her two addresses", n)
	}
}

// With the server down every recipient waits, the server named.
func TestLMTPDown(t *testing.T) {
	u, _ := users.Parse(strings.NewReader("alice\n"), "users", []string{"example.org"})
	sock := filepath.Join(t.TempDir(), "lmtp")
	c := LMTP{Client: &remote.LMTP{Address: "unix:" + sock}, Users: func() *users.Map { return u }}
	r := c.Deliver(context.Background(), "example.org", []*queue.Parcel{parcel("q1", "alice@example.org")})[0][0]
	if r.Status != queue.Transient || r.Host != "unix:"+sock {
		t.Errorf("server down: %+v", r)
	}
}
