package dsn

import (
	"strings"
	"testing"
)

func FuzzBuild(f *testing.F) {
	f.Add("550 5.1.1 <bob@example.org>: no such user", "alice@example.net", "bob@example.org", "mx1.example.org", original)
	f.Add("550 x\r\nBcc: x@evil", "\"john doe\"@example.net", "b\r\nBcc: y", "mx\n\tTo: z", "Subject: caf\xe9\n\nbody")
	f.Add(strings.Repeat("x", 2000), "jörg@exämple.de", strings.Repeat(" ", 1200)+"a", "", strings.Repeat("\t", 1500)+"\r")
	f.Add("\xff\x00\u0085 ", "a@[192.0.2.1]", "", "h", "\r\n\r\n")
	f.Fuzz(func(t *testing.T, diag, sender, rcpt, remote, orig string) {
		b := bounce()
		b.From = sender
		b.Rcpts = b.Rcpts[:1]
		b.Rcpts[0].Addr, b.Rcpts[0].Diagnostic, b.Rcpts[0].RemoteMTA = rcpt, diag, remote
		b.Original = strings.NewReader(orig)
		raw, err := Build(b)
		if err != nil {
			return
		}
		checkLines(t, raw)
		r, err := parse(raw)
		if err != nil {
			t.Fatalf("%v in:\n%q", err, raw)
		}
		// Nothing from outside made a header of its own.
		want := []string{"From", "To", "Subject", "Date", "Message-Id", "Auto-Submitted", "Mime-Version", "Content-Type"}
		if len(r.header) != len(want) {
			t.Errorf("header fields %v, want %v", r.header, want)
		}
		if len(r.parts) != 3 {
			t.Fatalf("%d parts, want 3", len(r.parts))
		}
		bs, err := blocks(r.parts[1].body)
		if err != nil {
			t.Fatalf("part 2: %v", err)
		}
		if len(bs) != 2 || len(bs[1]["Final-Recipient"]) != 1 {
			t.Errorf("part 2 is not one report on one recipient:\n%q", r.parts[1].body)
		}
	})
}
