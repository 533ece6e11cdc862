package dsn

import (
	"bytes"
	"fmt"
	"net/mail"
	"strings"
	"testing"
	"time"
)

func TestBuild(t *testing.T) {
	b := bounce()
	r, raw := build(t, b)

	h := r.header
	if to, err := mail.ParseAddress(h.Get("To")); err != nil || to.Address != "alice@example.net" {
		t.Errorf("To: %q (%v), want the original sender", h.Get("To"), err)
	}
	if from, err := mail.ParseAddress(h.Get("From")); err != nil || from.Address != "MAILER-DAEMON@mx.example.com" {
		t.Errorf("From: %q (%v)", h.Get("From"), err)
	}
	if got := h.Get("Subject"); got != "Undelivered Mail Returned to Sender" {
		t.Errorf("Subject: %q", got)
	}
	if d, err := h.Date(); err != nil || !d.Equal(now) {
		t.Errorf("Date: %q (%v), want %v", h.Get("Date"), err, now)
	}
	id := h.Get("Message-ID")
	if !strings.HasPrefix(id, "<0F3KX5ZQ8N7M2A1B.bounce.") || !strings.HasSuffix(id, "@mx.example.com>") {
		t.Errorf("Message-ID: %q", id)
	}
	if got := h.Get("Auto-Submitted"); got != "auto-replied" {
		t.Errorf("Auto-Submitted: %q", got)
	}
	if got := h.Get("MIME-Version"); got != "1.0" {
		t.Errorf("MIME-Version: %q", got)
	}
	if !strings.Contains(h.Get("Content-Type"), "report-type=delivery-status") {
		t.Errorf("Content-Type: %q", h.Get("Content-Type"))
	}

	if len(r.parts) != 3 {
		t.Fatalf("%d parts, want 3", len(r.parts))
	}
	for i, want := range []string{"text/plain; charset=utf-8", "message/delivery-status", "text/rfc822-headers"} {
		if got := r.parts[i].header.Get("Content-Type"); got != want {
			t.Errorf("part %d: Content-Type %q, want %q", i+1, got, want)
		}
	}

	text := string(r.parts[0].body)
	for _, rc := range b.Rcpts {
		if !strings.Contains(text, rc.Addr) || !strings.Contains(text, rc.Diagnostic) {
			t.Errorf("part 1 does not name %s with %q:\n%s", rc.Addr, rc.Diagnostic, text)
		}
	}

	bs, err := blocks(r.parts[1].body)
	if err != nil {
		t.Fatalf("part 2: %v", err)
	}
	if len(bs) != 3 {
		t.Fatalf("part 2: %d blocks, want 3:\n%s", len(bs), r.parts[1].body)
	}
	if got := bs[0].Get("Reporting-MTA"); got != "dns; mx.example.com" {
		t.Errorf("Reporting-MTA: %q", got)
	}
	if got, err := mail.ParseDate(bs[0].Get("Arrival-Date")); err != nil || !got.Equal(b.Arrival) {
		t.Errorf("Arrival-Date: %q (%v)", bs[0].Get("Arrival-Date"), err)
	}
	want := []map[string]string{{
		"Final-Recipient": "rfc822; bob@example.org",
		"Action":          "failed",
		"Status":          "5.1.1",
		"Remote-MTA":      "dns; mx1.example.org",
		"Diagnostic-Code": "smtp; 550 5.1.1 <bob@example.org>: no such user",
	}, {
		"Final-Recipient": "rfc822; carol@nowhere.example",
		"Action":          "failed",
		"Status":          "5.1.2",
		"Remote-MTA":      "",
		"Diagnostic-Code": "x-facteur; Host or domain name not found: nowhere.example",
	}}
	for i, fields := range want {
		for k, v := range fields {
			if got := bs[i+1].Get(k); got != v {
				t.Errorf("recipient %d: %s: %q, want %q", i+1, k, got, v)
			}
		}
		if d, err := mail.ParseDate(bs[i+1].Get("Last-Attempt-Date")); err != nil || !d.Equal(b.Rcpts[i].LastAttempt) {
			t.Errorf("recipient %d: Last-Attempt-Date %q (%v)", i+1, bs[i+1].Get("Last-Attempt-Date"), err)
		}
	}

	orig := r.parts[2]
	if got := orig.header.Get("Content-Transfer-Encoding"); got != "7bit" {
		t.Errorf("part 3: Content-Transfer-Encoding %q, want 7bit", got)
	}
	if !bytes.Contains(orig.body, []byte("Subject: Lunch on Friday?\r\n")) {
		t.Errorf("part 3 lacks the original Subject:\n%s", orig.body)
	}
	if bytes.Contains(raw, []byte("secret body")) {
		t.Errorf("the original body is in the bounce:\n%s", raw)
	}
}

func TestMessageIDUnique(t *testing.T) {
	r1, _ := build(t, bounce())
	r2, _ := build(t, bounce())
	if id := r1.header.Get("Message-ID"); id == r2.header.Get("Message-ID") {
		t.Errorf("two bounces of one message share Message-ID %s", id)
	}
}

func TestDelayed(t *testing.T) {
	b := bounce()
	until := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	for i := range b.Rcpts {
		b.Rcpts[i].Action = "delayed"
		b.Rcpts[i].Status = "4.4.1"
		b.Rcpts[i].WillRetryUntil = until
	}
	r, _ := build(t, b)
	if got := r.header.Get("Subject"); got != "Delayed Mail (still being retried)" {
		t.Errorf("Subject: %q", got)
	}
	if n := strings.Count(string(r.parts[1].body), "Will-Retry-Until: Fri, 27 Nov 2026 09:00:00 +0000\r\n"); n != len(b.Rcpts) {
		t.Errorf("Will-Retry-Until given %d times, want %d:\n%s", n, len(b.Rcpts), r.parts[1].body)
	}
	if !strings.Contains(string(r.parts[0].body), "still being retried") {
		t.Errorf("part 1 does not say delivery goes on:\n%s", r.parts[0].body)
	}

	// One recipient failed: the message, as a whole, is returned.
	b = bounce()
	b.Rcpts[1].Action, b.Rcpts[1].Status = "delayed", "4.4.1"
	r, _ = build(t, b)
	if got := r.header.Get("Subject"); got != "Undelivered Mail Returned to Sender" {
		t.Errorf("mixed: Subject: %q", got)
	}
}

func TestHeaderInjection(t *testing.T) {
	b := bounce()
	b.Rcpts[0].Diagnostic = "550 no\r\nBcc: x@evil.example"
	b.Rcpts[0].RemoteMTA = "mx1.example.org\nBcc: y@evil.example"
	b.Rcpts[1].Addr = "carol@nowhere.example\r\n\r\nFinal-Recipient: rfc822; z@evil.example"
	r, raw := build(t, b)

	for k := range r.header {
		if k == "Bcc" {
			t.Errorf("a Bcc header was injected:\n%s", raw)
		}
	}
	bs, err := blocks(r.parts[1].body)
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 3 {
		t.Fatalf("part 2: %d blocks, want 3:\n%s", len(bs), r.parts[1].body)
	}
	for i, h := range bs {
		if h.Get("Bcc") != "" || len(h.Values("Final-Recipient")) > 1 {
			t.Errorf("part 2 block %d has injected fields: %v", i, h)
		}
	}
	if got, want := bs[1].Get("Diagnostic-Code"), "smtp; 550 no  Bcc: x@evil.example"; got != want {
		t.Errorf("Diagnostic-Code: %q, want %q", got, want)
	}
}

func TestLongDiagnostic(t *testing.T) {
	for name, diag := range map[string]string{
		"words":    "550 5.7.1 " + strings.Repeat("rejected by policy ", 270),
		"no space": "550 " + strings.Repeat("x", 5000),
		"utf-8":    "550 " + strings.Repeat("é", 3000),
	} {
		t.Run(name, func(t *testing.T) {
			b := bounce()
			b.Rcpts[0].Diagnostic = diag
			b.Rcpts[0].Addr = strings.Repeat("b", 1500) + "@example.org"
			r, _ := build(t, b)
			if !strings.Contains(string(r.parts[0].body), diag) {
				t.Errorf("part 1 lacks the diagnostic verbatim")
			}
			bs, err := blocks(r.parts[1].body)
			if err != nil {
				t.Fatal(err)
			}
			// Folding may only have added spaces where no space was.
			got := strings.ReplaceAll(bs[1].Get("Diagnostic-Code"), " ", "")
			if want := "smtp;" + strings.ReplaceAll(diag, " ", ""); got != want {
				t.Errorf("Diagnostic-Code, unfolded and without spaces: %.60q..., want %.60q...", got, want)
			}
			if name == "words" && bs[1].Get("Diagnostic-Code") != "smtp; "+strings.TrimSpace(diag) {
				t.Errorf("Diagnostic-Code folded at spaces does not unfold to the reply")
			}
		})
	}
}

func TestOriginal(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     string // part 3
		cte      string
	}{
		{"LF", "Subject: hi\nX: y\n\nbody\n", "Subject: hi\r\nX: y\r\n", "7bit"},
		{"8-bit", "Subject: caf\xe9\r\n\r\nbody", "Subject: caf\xe9\r\n", "8bit"},
		{"no body", "Subject: hi", "Subject: hi\r\n", "7bit"},
		{"NUL and CR", "Subject: a\x00b\rc\r\n\r\n", "Subject: a b c\r\n", "7bit"},
		{"folded", "Subject: " + strings.Repeat("x", 1200) + "\r\n\r\n",
			"Subject:\r\n " + strings.Repeat("x", 997) + "\r\n " + strings.Repeat("x", 203) + "\r\n", "7bit"},
		{"too long", strings.Repeat("X-Pad: "+strings.Repeat("p", 90)+"\r\n", 1000),
			strings.Repeat("X-Pad: "+strings.Repeat("p", 90)+"\r\n", 65536/99), "7bit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := bounce()
			b.Original = strings.NewReader(tc.in)
			r, _ := build(t, b)
			p := r.parts[2]
			if string(p.body) != tc.want {
				t.Errorf("part 3: %.200q, want %.200q", p.body, tc.want)
			}
			if got := p.header.Get("Content-Transfer-Encoding"); got != tc.cte {
				t.Errorf("Content-Transfer-Encoding %q, want %q", got, tc.cte)
			}
		})
	}

	b := bounce()
	b.Original = nil
	if r, _ := build(t, b); len(r.parts) != 2 {
		t.Errorf("without an original: %d parts, want 2", len(r.parts))
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, fmt.Errorf("disk on fire") }

func TestRefused(t *testing.T) {
	for name, change := range map[string]func(*Bounce){
		"null sender":        func(b *Bounce) { b.From = "" },
		"sender with CRLF":   func(b *Bounce) { b.From = "alice@example.net\r\nBcc: x@evil" },
		"sender not address": func(b *Bounce) { b.From = "alice" },
		"sender too long":    func(b *Bounce) { b.From = strings.Repeat("a", 250) + "@example.net" },
		"no recipients":      func(b *Bounce) { b.Rcpts = nil },
		"no address":         func(b *Bounce) { b.Rcpts[0].Addr = "" },
		"bad action":         func(b *Bounce) { b.Rcpts[0].Action = "delivered" },
		"bad status":         func(b *Bounce) { b.Rcpts[0].Status = "550" },
		"success status":     func(b *Bounce) { b.Rcpts[0].Status = "2.0.0" },
		"delayed permanent":  func(b *Bounce) { b.Rcpts[0].Action = "delayed" },
		"no time":            func(b *Bounce) { b.Now = time.Time{} },
		"bad host":           func(b *Bounce) { b.ReportingMTA = "mx example.com" },
		"bad id":             func(b *Bounce) { b.ID = "a>b" },
		"unreadable":         func(b *Bounce) { b.Original = failingReader{} },
	} {
		b := bounce()
		change(b)
		if _, err := Build(b); err == nil {
			t.Errorf("%s: no error", name)
		} else if !strings.HasPrefix(err.Error(), "dsn: ") {
			t.Errorf("%s: error %q lacks context", name, err)
		}
	}

	// A temporary failure that outlived the retries is a failure.
	b := bounce()
	b.Rcpts[0].Status = "4.4.7"
	if _, err := Build(b); err != nil {
		t.Errorf("failed with 4.4.7: %v", err)
	}
}
